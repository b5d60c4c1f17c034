"""An IT help desk for envsim: employees, their laptops and support tickets (an example plug-in package).

- :mod:`envsim_helpdesk.models`: the records and the world state;
- :mod:`envsim_helpdesk.fixtures`: seed data generated from a seed (the ``small`` fixture);
- :mod:`envsim_helpdesk.toolkit`: the toolkit, with two tools (``find_employee``, ``open_ticket``);
- ``scenarios/`` and ``personas/``: YAML files envsim finds through the package's entry points.
"""
