"""Task family files: the scenario's provenance fields, the family schema, located problems."""

from __future__ import annotations

from pathlib import Path

import pytest

from envsim.errors import ScenarioError
from envsim.loader import load_scenario_text
from envsim.scenario import Scenario

_BODY = """\
id: GeneratedProbe
domain: retail
description: A probe.
toolkits: [retail]
agent: {guidelines: Help.}
user: {goal: Help me., opening: Hi.}
expected: {}
"""


def test_a_scenario_carries_its_source_and_review_status() -> None:
    text = _BODY + (
        "source: {family: RetailProbe, parameters: {world_seed: 3}, seed: 7, generator: envsim-factory/1}\n"
        "status: accepted\n"
    )
    scenario = load_scenario_text(text, lint=False)
    assert scenario.source is not None and scenario.source.family == "RetailProbe"
    assert scenario.source.parameters == {"world_seed": 3}
    assert scenario.status == "accepted"
    properties = Scenario.model_json_schema()["properties"]
    assert {"source", "status"} <= set(properties)


def test_an_unknown_status_is_located() -> None:
    with pytest.raises(ScenarioError) as caught:
        load_scenario_text(_BODY + "status: final\n", lint=False)
    assert str(caught.value.problems[0]).startswith("<string>:8:9: status: Input should be 'draft' or 'accepted'")


def test_scenario_discovery_skips_family_folders(tmp_path: Path) -> None:
    from envsim.registration import scenario_files

    (tmp_path / "retail" / "families").mkdir(parents=True)
    (tmp_path / "families" / "banking").mkdir(parents=True)
    (tmp_path / "retail" / "one.yaml").write_text("id: One\n", encoding="utf-8")
    (tmp_path / "retail" / "families" / "fam.yaml").write_text("family: Fam\n", encoding="utf-8")
    (tmp_path / "families" / "banking" / "fam.yaml").write_text("family: Fam\n", encoding="utf-8")
    assert scenario_files([tmp_path]) == [tmp_path / "retail" / "one.yaml"]


FAMILIES = Path(__file__).parent / "families"

_PROBE = """\
family: ProbeRefund
toolkit: retail
kind: resolution
description: A probe.
world: {fixture: default, seeds: [0, 1]}
select:
  order:
    table: orders
    where: {status: delivered, items: {min_len: 2}}
  customer:
    table: customers
    where: {id: {ref: order.customer_id}}
scenario:
  agent: {guidelines: Help.}
  user:
    goal: "Refund order {{ order.id }}."
    opening: "Hi, I want a refund for {{ order.id }}."
    facts: [{key: phone, value: "{{ customer.phone }}", asked_by: [phone]}]
  expected:
    actions:
      - {name: find_customer_by_phone, arguments: {phone: "{{ customer.phone }}"}}
      - {name: refund_order, arguments: {order_id: "{{ order.id }}", reason: damaged}}
"""


def _problems(text: str, tmp_path: Path) -> list[str]:
    from envsim.factory.generate import check_family

    path = tmp_path / "probe.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        check_family(path)
    return [str(p) for p in caught.value.problems]


def _at(text: str, needle: str, occurrence: int = 0) -> tuple[int, int]:
    lines = text.splitlines()
    hits = [(i + 1, row.index(needle) + 1) for i, row in enumerate(lines) if needle in row]
    return hits[occurrence]


def test_the_probe_family_is_valid(tmp_path: Path) -> None:
    from envsim.factory.generate import check_family

    path = tmp_path / "probe.yaml"
    path.write_text(_PROBE, encoding="utf-8")
    assert check_family(path).name == "ProbeRefund"


def test_a_template_error_is_located_at_its_value(tmp_path: Path) -> None:
    text = _PROBE.replace('goal: "Refund order {{ order.id }}."', 'goal: "Refund {{ order.id | shout }}."')
    line, column = _at(text, '"Refund {{')
    assert _problems(text, tmp_path) == [
        f"{tmp_path / 'probe.yaml'}:{line}:{column}: scenario.user.goal: template line 1, column 22: the filter "
        "'shout' is not allowed; allowed: capitalize, d, default, dollars, first, ids, int, join, last, length, "
        "lower, string, title, trim, upper"
    ]


def test_a_template_naming_an_unknown_field_is_located_when_it_renders(tmp_path: Path) -> None:
    text = _PROBE.replace("Hi, I want a refund for {{ order.id }}.", "Hi, I am {{ customer.nickname }}.")
    line, column = _at(text, '"Hi, I am')
    [problem] = _problems(text, tmp_path)
    assert problem.startswith(f"{tmp_path / 'probe.yaml'}:{line}:{column}: scenario.user.opening: template line 1: ")
    assert "nickname" in problem


def test_a_query_that_matches_nothing_is_located_at_its_binding(tmp_path: Path) -> None:
    text = _PROBE.replace(
        "where: {status: delivered, items: {min_len: 2}}", "where: {status: delivered, items: {min_len: 99}}"
    )
    line, column = _at(text, "table: orders")
    assert _problems(text, tmp_path) == [
        f"{tmp_path / 'probe.yaml'}:{line}:{column}: select.order: no record matches (in table orders, given the "
        "earlier bindings) in 128 tries over the world seeds [0, 1]"
    ]


def test_an_unknown_tool_and_a_wrong_argument_are_located(tmp_path: Path) -> None:
    text = _PROBE.replace(
        "name: refund_order, arguments: {order_id", "name: refund_ordr, arguments: {order_id"
    ).replace("arguments: {phone:", "arguments: {phon:")
    path = tmp_path / "probe.yaml"
    tool = _at(text, "refund_ordr")
    argument = _at(text, "phon:")
    assert _problems(text, tmp_path) == [
        f"{path}:{argument[0]}:{argument[1]}: scenario.expected.actions.0.arguments.phon: find_customer_by_phone "
        "has no argument 'phon' (did you mean 'phone'?); arguments: phone",
        f"{path}:{tool[0]}:{tool[1]}: scenario.expected.actions.1.name: unknown tool 'refund_ordr' (did you mean "
        "'refund_order'?)",
    ]


def test_schema_errors_are_located_with_suggestions(tmp_path: Path) -> None:
    text = _PROBE.replace("kind: resolution", "kind: resolve").replace(
        "where: {status: delivered,", "where: {status: {eqq: delivered},"
    )
    path = tmp_path / "probe.yaml"
    kind = _at(text, "resolve")
    op = _at(text, "eqq")
    problems = _problems(text, tmp_path)
    assert problems[0].startswith(f"{path}:{kind[0]}:{kind[1]}: kind: Input should be 'resolution', 'refusal'")
    assert problems[1] == f"{path}:{op[0]}:{op[1]}: select.order.where.status.eqq: unknown field (did you mean 'eq'?)"


def test_static_checks_name_tables_fields_references_and_derived_keys(tmp_path: Path) -> None:
    text = (
        _PROBE.replace("table: customers", "table: customer")
        .replace("items: {min_len: 2}", "itemz: {min_len: 2}")
        .replace("{id: {ref: order.customer_id}}", "{id: {ref: buyer.id}}")
        .replace("scenario:\n", "scenario:\n  id: Fixed\n")
    )
    path = tmp_path / "probe.yaml"
    found = _problems(text, tmp_path)
    assert found == [
        f"{path}:{_at(text, 'itemz')[0]}:{_at(text, 'itemz')[1]}: select.order.where.itemz: orders records have no "
        "field 'itemz' (did you mean 'items'?)",
        f"{path}:{_at(text, 'table: customer')[0]}:{_at(text, 'table: customer')[1] + 7}: select.customer.table: "
        "unknown table "
        "'customer' (did you mean 'customers'?); tables: customers, orders, products, payments, refunds, returns, "
        "exchanges, handoffs",
        f"{path}:{_at(text, 'buyer')[0]}:{_at(text, '{ref: buyer')[1]}: select.customer.where.id: 'buyer.id' refers "
        "to 'buyer', which is not an earlier binding",
        f"{path}:{_at(text, 'id: Fixed')[0]}:3: scenario.id: 'id' is derived by the generator; a family body may not "
        "give it",
    ]


def test_a_family_file_is_told_from_a_scenario_file(tmp_path: Path) -> None:
    from envsim.factory.family import is_family_file

    assert is_family_file(FAMILIES / "retail" / "refund_damaged_unit.yaml")
    assert not is_family_file(Path(__file__).parents[2] / "scenarios" / "retail" / "retail_refund_damaged_mug.yaml")


def test_envsim_validate_checks_family_files(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from envsim.cli import app

    bad = tmp_path / "families" / "retail" / "probe.yaml"
    bad.parent.mkdir(parents=True)
    bad.write_text(_PROBE.replace("refund_order", "refund_ordr"), encoding="utf-8")
    (tmp_path / "families" / "retail" / "good.yaml").write_text(
        _PROBE.replace("ProbeRefund", "ProbeGood"), encoding="utf-8"
    )
    result = CliRunner().invoke(app, ["validate", str(tmp_path)])
    assert result.exit_code == 2
    assert "scenario.expected.actions.1.name: unknown tool 'refund_ordr'" in result.output
    assert "2 scenario files: 1 valid, 1 invalid" in result.output or "1 valid, 1 invalid" in result.output


def test_the_family_json_schema_documents_the_query_language() -> None:
    from envsim.factory.family import Family

    schema = Family.model_json_schema()
    condition = schema["$defs"]["Condition"]["properties"]
    assert {"eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "min_len", "max_len", "contains", "is_null"} <= set(
        condition
    )
    assert set(schema["properties"]["kind"]["enum"]) == {"resolution", "refusal", "escalation", "panic"}
