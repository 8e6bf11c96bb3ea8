"""Services as a dependency graph: cycles, start order, stop order."""

from __future__ import annotations


def dependencies(services: dict, name: str) -> list[str]:
    """What ``name`` depends on, among the services present (a dependency that is not required and
    not enabled is skipped, as compose does)."""
    deps = services[name].get("depends_on") or {}
    return sorted(d for d in deps if d in services)


def find_cycle(services: dict) -> list[str] | None:
    """A dependency cycle as [a, b, ..., a], or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(name: str) -> list[str] | None:
        state[name] = 1
        stack.append(name)
        for dep in dependencies(services, name):
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[name] = 2
        return None

    for name in sorted(services):
        if name not in state:
            found = visit(name)
            if found:
                return found
    return None


def levels(services: dict) -> list[list[str]]:
    """Start order in waves: each service comes after everything it depends on (no cycles)."""
    remaining = set(services)
    done: set[str] = set()
    out = []
    while remaining:
        wave = sorted(n for n in remaining if set(dependencies(services, n)) <= done)
        if not wave:
            raise ValueError("dependency cycle")
        out.append(wave)
        done.update(wave)
        remaining.difference_update(wave)
    return out


def start_order(services: dict) -> list[str]:
    return [n for wave in levels(services) for n in wave]


def stop_order(services: dict) -> list[str]:
    """Dependents first: the reverse of the start order."""
    return list(reversed(start_order(services)))


def with_dependencies(services: dict, names: list[str]) -> list[str]:
    """``names`` and everything they need, transitively."""
    seen: list[str] = []

    def add(name: str) -> None:
        if name in seen:
            return
        seen.append(name)
        for dep in dependencies(services, name):
            add(dep)

    for n in names:
        add(n)
    return seen
