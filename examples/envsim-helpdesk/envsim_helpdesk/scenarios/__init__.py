"""The help desk's scenario files (declared as the ``envsim.scenarios`` entry point ``helpdesk``)."""
