"""The library's shape in figures: modules per folder, the largest modules, import cycles.

    .venv/bin/python bench/layout.py [--root CHECKOUT]

``--root`` points at another checkout (a ``git worktree`` of an older commit) to compare.
A cycle is a group of modules that import each other, directly or not, counting imports
inside functions too (grimp's graph, the one import-linter checks the layers on).
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import grimp


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    root = parser.parse_args().root.resolve()
    library = root / "include"
    sys.path.insert(0, str(library))
    files = sorted((library / "aire").rglob("*.py"))
    per_folder = Counter(str(f.parent.relative_to(library)) for f in files if f.name != "__init__.py")
    print("modules per folder:")
    for folder, count in sorted(per_folder.items()):
        print(f"  {folder:<20} {count:>3}")
    sizes = sorted(((len(f.read_text().splitlines()), f.relative_to(library)) for f in files), reverse=True)
    print("largest modules (lines):", ", ".join(f"{path} {lines}" for lines, path in sizes[:3]))
    cycles = import_cycles(grimp.build_graph("aire", cache_dir=None))
    print(f"import cycles: {len(cycles)}", *(" <-> ".join(group) for group in cycles), sep="\n  ")


def import_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    for start in sorted(graph.modules):
        if start in index:
            continue
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, targets = work[-1]
            target = next(targets, None)
            if target is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[module])
                if low[module] == index[module]:
                    group = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        group.append(member)
                        if member == module:
                            break
                    if len(group) > 1:
                        groups.append(sorted(group))
            elif target not in index:
                index[target] = low[target] = len(index)
                stack.append(target)
                on_stack.add(target)
                work.append((target, iter(sorted(graph.find_modules_directly_imported_by(target)))))
            elif target in on_stack:
                low[module] = min(low[module], index[target])
    return groups


if __name__ == "__main__":
    main()
