"""The validate and check passes: a layer's sanity, cross-field rules, SageMaker acceptance."""
