"""The ``envsim`` command line.

Commands that report numbers take ``--json`` and then print one JSON object as their last
line. Invalid input exits with status 2 and located messages, never a traceback.
"""

from __future__ import annotations

import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from envsim.cli_common import JsonFlag, emit_json, err, out, write_schema
from envsim.errors import EnvsimError, ScenarioError

app = typer.Typer(
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    help="Simulated enterprise environments for training and evaluating LLM agents.",
)


@app.command()
def validate(
    paths: Annotated[list[Path], typer.Argument(help="Scenario files or folders (searched recursively).")],
    as_json: JsonFlag = False,
) -> None:
    """Validate and lint scenario files and task family files (found in families/ folders); exit 2 if any is invalid."""
    from envsim.factory.family import is_family_file
    from envsim.factory.generate import check_family
    from envsim.loader import load_scenario
    from envsim.registration import id_clashes, scenario_files

    missing = [p for p in paths if not p.exists()]
    for p in missing:
        err.print(f"{p}: no such file or folder")
    files = scenario_files(paths, families=True)
    families = {f for f in files if is_family_file(f)}
    clashes = id_clashes([f for f in files if f not in families])  # two files with one id: an error in each
    problems: list[str] = []
    invalid = 0
    for path in files:
        found = [clashes[path]] if path in clashes else []
        try:
            check_family(path) if path in families else load_scenario(path)
        except ScenarioError as error:
            found = [*error.problems, *found]
        if found:
            invalid += 1
            for problem in found:
                problems.append(str(problem))
                err.print(str(problem))
    valid = len(files) - invalid
    out.print(f"{len(files)} scenario files: {valid} valid, {invalid} invalid")
    if as_json:
        emit_json({"files": len(files), "valid": valid, "invalid": invalid, "problems": problems})
    if invalid or missing or not files:
        raise typer.Exit(2)


@app.command("list")
def list_scenarios(as_json: JsonFlag = False) -> None:
    """List the scenarios (the shipped ones and those of ENVSIM_SCENARIOS), and the files left out."""
    from envsim.loader import load_scenario
    from envsim.registration import discover, discovery

    rows: list[dict[str, Any]] = []
    for scenario_id, (path, max_turns) in sorted(discover().items()):
        try:
            s = load_scenario(path, lint=False)
            rows.append(
                {
                    "id": scenario_id,
                    "gym_id": s.gym_id,
                    "domain": s.domain,
                    "toolkits": s.toolkits,
                    "escalation": s.expected.escalation,
                    "max_turns": max_turns,
                    "tags": s.tags,
                    "file": str(path),
                }
            )
        except ScenarioError as error:
            rows.append(
                {
                    "id": scenario_id,
                    "gym_id": "",
                    "domain": "",
                    "toolkits": [],
                    "escalation": "",
                    "max_turns": max_turns,
                    "tags": [],
                    "file": str(path),
                    "error": str(error.problems[0]),
                }
            )
    skipped = discovery().skipped  # files not registered (bad id, one id in two files, ...): shown, not hidden
    for left_out in skipped:
        rows.append(
            {
                "id": left_out.scenario_id or "",
                "gym_id": "",
                "domain": "",
                "toolkits": [],
                "escalation": "",
                "max_turns": None,
                "tags": [],
                "file": str(left_out.path),
                "error": str(left_out.problem),
                "registered": False,
            }
        )
    table = Table("id", "domain", "toolkits", "escalation", "turns", "tags")
    for r in rows:
        table.add_row(
            r["id"],
            r["domain"] or Text("not registered" if "registered" in r else "invalid", style="red"),
            ",".join(r["toolkits"]),
            r["escalation"],
            "" if r["max_turns"] is None else str(r["max_turns"]),
            ",".join(r["tags"]),
        )
    out.print(table)
    out.print(f"{len(rows) - len(skipped)} scenarios")
    if skipped:
        err.print(f"{len(skipped)} scenario files not registered:")
        for left_out in skipped:
            err.print(f"  {left_out.problem}")
    if as_json:
        emit_json({"count": len(rows) - len(skipped), "not_registered": len(skipped), "scenarios": rows})


@app.command()
def schema(
    output: Annotated[Path | None, typer.Option("--out", "-o", help="Write to this file instead of stdout.")] = None,
) -> None:
    """Write the scenario JSON Schema (point your editor's YAML plugin at it)."""
    from envsim.scenario import Scenario

    write_schema(Scenario, output)


@app.command()
def run(
    scenarios: Annotated[
        list[str], typer.Argument(help="Scenario ids or files, suites (DIR or DIR:split); 'all': every registered one.")
    ],
    agent: Annotated[str, typer.Option(help="The agent: 'scripted' (the offline reference agent).")] = "scripted",
    user: Annotated[str, typer.Option(help="The mock user: scripted, transcript or llm.")] = "scripted",
    episodes: Annotated[int, typer.Option(min=1, help="Episodes per scenario.")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the first episode; episode i uses seed + i.")] = 0,
    error_rate: Annotated[float, typer.Option(min=0.0, max=1.0, help="Scripted agent's mistake rate.")] = 0.0,
    output: Annotated[Path | None, typer.Option("--out", help="Append trajectories to this JSONL file.")] = None,
    show: Annotated[bool, typer.Option(help="Print each transcript.")] = False,
    judge_model: Annotated[
        str | None,
        typer.Option(help="Model of the scenarios' judges (reward.judges); without one they are recorded as not run."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run episodes offline with the scripted user and agent; print rewards."""
    from envsim.agents import ScriptedAgent
    from envsim.env import ScenarioEnv
    from envsim.registration import discover
    from envsim.rollout import run_episode
    from envsim.transcript_text import format_messages

    if agent != "scripted":
        raise EnvsimError(f"unknown agent {agent!r}: the offline agent is 'scripted'")
    from envsim.suite import resolve_ids

    names = sorted(discover()) if scenarios == ["all"] else resolve_ids(scenarios)
    from envsim.user.registry import make_user

    # validate all before running any
    envs = [ScenarioEnv(name, user=make_user(user), judge_model=judge_model) for name in names]
    started = time.perf_counter()
    rewards: list[float] = []
    ends: Counter[str] = Counter()
    per_scenario: dict[str, float] = {}
    if output is not None:
        output.parent.mkdir(parents=True, exist_ok=True)
    sink = output.open("a", encoding="utf-8") if output else None
    try:
        for env in envs:
            policy = ScriptedAgent(error_rate)
            scores = []
            for i in range(episodes):
                trajectory, breakdown = run_episode(env, policy, seed=seed + i)
                rewards.append(breakdown.total)
                scores.append(breakdown.total)
                ends[trajectory.end_reason] += 1
                if sink:
                    sink.write(trajectory.to_json() + "\n")
                if show:
                    out.print(Text.assemble((env.scenario.id, "bold"), f" seed={seed + i}"))
                    out.print(format_messages(trajectory.messages))
                    for name, part in breakdown.components.items():
                        out.print(f"  {name}: {part.shown()} (w={part.weight}) {part.explanation}")
            per_scenario[env.scenario.id] = sum(scores) / len(scores)
            out.print(f"{env.scenario.id}: mean reward {per_scenario[env.scenario.id]:.3f} over {episodes} episodes")
    finally:
        if sink:
            sink.close()
    wall = time.perf_counter() - started
    mean = sum(rewards) / len(rewards)
    success = sum(r >= 1.0 for r in rewards) / len(rewards)
    out.print(f"{len(rewards)} episodes, mean reward {mean:.3f}, success {success:.1%}, {wall:.2f}s")
    if as_json:
        emit_json(
            {
                "episodes": len(rewards),
                "mean_reward": mean,
                "success_rate": success,
                "end_reasons": dict(ends),
                "per_scenario": per_scenario,
                "wall_seconds": wall,
            }
        )


@app.command()
def play(
    scenario: Annotated[str, typer.Argument(help="Scenario id or file.")],
    seed: Annotated[int, typer.Option(help="Episode seed.")] = 0,
) -> None:
    """Play the agent yourself: type messages to the user, or tool calls.

    A tool call is JSON ({"name": ..., "arguments": {...}}) or '/call NAME {json args}'.
    '/tools' lists the tools, '/state' shows what changed, '/quit' ends.
    """
    from envsim.env import ScenarioEnv
    from envsim.tools import describe

    env = ScenarioEnv(scenario)
    obs, info = env.reset(seed=seed)
    out.print(Text.assemble((env.scenario.id, "bold"), f": {env.scenario.description}"))
    out.print(Text("Type a message, a JSON tool call, /call NAME {args}, /tools, /state or /quit.", style="dim"))
    out.print(Text.assemble(("user:", "cyan"), " ", obs))
    while True:
        try:
            line = input("agent> ")
        except EOFError:
            break
        if not line.strip():
            continue
        if line.strip() == "/quit":
            break
        if line.strip() == "/tools":
            specs = [s for s in (env.session.tools.spec(n) for n in env.session.tools.names) if s is not None]
            for row in describe(specs):
                out.print(row)
            continue
        if line.strip() == "/state":
            out.print(json.dumps(env.session.world.changed(), indent=2))
            continue
        if line.startswith("/call "):
            name, _, args = line[len("/call ") :].strip().partition(" ")
            try:
                line = json.dumps({"name": name, "arguments": json.loads(args) if args.strip() else {}})
            except json.JSONDecodeError as error:
                err.print(f"invalid JSON arguments: {error}")
                continue
        obs, reward, terminated, truncated, info = env.step(line)
        out.print(Text.assemble(("tool:" if obs.startswith("{") else "user:", "cyan"), " ", obs))
        if terminated or truncated:
            out.print(Text(f"episode ended: {info['end_reason']} after {info['turn']} turns", style="dim"))
            break
    breakdown = env.score()
    out.print(Text(f"reward {breakdown.total:.3f} ({breakdown.outcome})", style="bold"))
    for name, part in breakdown.components.items():
        out.print(f"  {name}: {part.shown()} (w={part.weight}) {part.explanation}")


def _register_commands() -> None:
    import importlib
    import pkgutil

    import envsim.commands

    for module in pkgutil.iter_modules(envsim.commands.__path__):
        importlib.import_module(f"envsim.commands.{module.name}").register(app)


_register_commands()


def main() -> None:
    """Console entry point: known errors become a message and exit status 2."""
    try:
        app()
    except EnvsimError as error:
        err.print(f"error: {error}")
        sys.exit(2)
    except OSError as error:  # unreadable input, unwritable output: say which file
        err.print(f"error: {error.strerror or error}: {error.filename or ''}")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
