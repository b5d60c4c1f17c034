"""The help desk's personas (declared as the ``envsim.personas`` entry point ``helpdesk``)."""
