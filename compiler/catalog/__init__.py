"""Data catalogs (instances, JumpStart models, framework images) and the code reading them."""
