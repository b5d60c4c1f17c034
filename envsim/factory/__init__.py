"""The scenario factory: task families, instances drawn from them, the verification gate, suites.

- :mod:`envsim.factory.family`: family files (schema, static checks, located problems);
- :mod:`envsim.factory.query`: the query language that selects a family instance's records;
- :mod:`envsim.factory.render`: rendering a family's scenario body over the drawn records;
- :mod:`envsim.factory.draw`: drawing instances (deterministic parameters, instance ids);
- :mod:`envsim.factory.gate`: the verification gate every candidate passes before it is written;
- :mod:`envsim.factory.generate`: ``envsim scenarios generate`` (splits, atomic writes, workers).
"""
