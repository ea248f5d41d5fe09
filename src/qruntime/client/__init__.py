"""The qruntime client: talk to a qruntime server from Python."""
