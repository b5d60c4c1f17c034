"""Mock users: the persona model and the user simulators."""
