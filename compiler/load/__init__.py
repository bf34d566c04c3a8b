"""The load pass: spec files, defaults files, --set and JobSpec messages to plain trees."""
