"""Check that every import in ``llm_repair_gym`` and ``agents`` points down the layer chain.

    python scripts/check_layers.py            # exit 1 and one line per offending import when any points up

The layers, lowest first (a module may import from its own room and from any room in a lower layer):

    _version -> runtime -> lm -> meta | repair -> envs -> integrations | rl -> agents | bench
        -> cli, testing, the facade

Rooms in one layer (``meta`` and ``repair``; ``integrations`` and ``rl``; ``agents`` and ``bench``) are
independent: neither imports the other. The package never imports the top-level ``agents`` folder: the runner
finds agents through the ``llm_repair_gym.agents`` entry-point group. Every import counts, including those
inside functions; ``import llm_repair_gym`` alone is an import of the facade (the top).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

LAYERS: tuple[tuple[str, ...], ...] = (
    ("llm_repair_gym._version",),
    ("llm_repair_gym._aliases", "llm_repair_gym.runtime"),
    ("llm_repair_gym.lm",),
    ("llm_repair_gym.meta", "llm_repair_gym.repair"),
    ("llm_repair_gym.envs",),
    ("llm_repair_gym.integrations", "llm_repair_gym.rl"),
    ("agents", "llm_repair_gym.bench"),
    ("llm_repair_gym.cli", "llm_repair_gym.testing", "llm_repair_gym"),
)
"""Rooms by layer, lowest first. A module belongs to the longest room name that prefixes it."""

PACKAGES = ("llm_repair_gym", "agents")
"""The top-level packages whose modules are checked (their folders under the repository root)."""


def room_of(module: str) -> tuple[int, str] | None:
    """``(layer, room)`` of a dotted module name, or None for a module outside our packages."""
    best = None
    for layer, rooms in enumerate(LAYERS):
        for room in rooms:
            if (module == room or module.startswith(room + ".")) and (best is None or len(room) > len(best[1])):
                best = (layer, room)
    return best


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``tree``, relative imports resolved against ``module``."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[:len(base) - node.level + (1 if is_package else 0)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module
            # `from pkg import sub` imports pkg.sub when sub is a module: judge by the deepest room it names
            out += [(node.lineno, f"{name}.{alias.name}") for alias in node.names]
    return out


def violations(root: Path) -> list[str]:
    """One line per import that points up the chain or sideways between rooms of one layer."""
    problems = []
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            module = module_name(path, root)
            here = room_of(module)
            if here is None:
                continue
            tree = ast.parse(path.read_text(), filename=str(path))
            for line, name in imported(tree, module, path.name == "__init__.py"):
                there = room_of(name)
                if there is None or there[1] == here[1]:
                    continue
                if name.split(".")[0] == "agents" and module.split(".")[0] == "llm_repair_gym":
                    reason = "the package finds agents through entry points, never by import"
                elif there[0] > here[0]:
                    reason = f"{there[1]} is a layer above {here[1]}"
                elif there[0] == here[0]:
                    reason = f"{there[1]} and {here[1]} are independent rooms of one layer"
                else:
                    continue
                problems.append(f"{path.relative_to(root)}:{line}: imports {name}: {reason}")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    root = Path(args[0]) if args else Path(__file__).resolve().parents[1]
    problems = violations(root)
    for line in problems:
        print(line)
    print(f"{len(problems)} imports point up the layer chain" if problems else "every import points down the layers")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
