"""What a container's PID 1 keeps in its memory for the container's life: no host path (the plan it
was sent named the store's directories; a process that reads PID 1's memory, through a bug or a
capability it was given, learns nothing of the host's layout), and few pages of its own (one PID 1
per container: it is jupybox's whole per-container cost on the host)."""

from __future__ import annotations

import pytest

import jupybox

pytestmark = [pytest.mark.root]


def _writable_memory(pid: int) -> dict[str, bytes]:
    """Every private writable mapping of ``pid`` (stack, heap, data): name -> its bytes."""
    out: dict[str, bytes] = {}
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            start, end = (int(x, 16) for x in fields[0].split("-"))
            if "w" not in fields[1] or fields[1][3] != "p":
                continue
            name = fields[5] if len(fields) > 5 else f"anon@{start:x}"
            mem.seek(start)
            try:
                out[name] = out.get(name, b"") + mem.read(end - start)
            except OSError:  # a guard page
                continue
    return out


def _private_dirty_kib(pid: int, mappings: tuple[str, ...]) -> int:
    """Its own pages in these mappings ("" for anonymous ones): not the init binary's, whose pages
    count as private while no other PID 1 maps them yet."""
    total, current = 0, None
    with open(f"/proc/{pid}/smaps") as f:
        for line in f:
            fields = line.split()
            if "-" in fields[0] and len(fields) >= 5:
                current = fields[5] if len(fields) > 5 else ""
            elif fields[0] == "Private_Dirty:" and current in mappings:
                total += int(fields[1])
    return total


@pytest.mark.parametrize("speculated", [False, True], ids=["made-for-it", "made-ahead"])
def test_pid1_keeps_no_host_path_and_little_memory(store, speculated):
    image = "busybox:latest"
    if speculated:  # the second run of a kind takes a sandbox the service prepared for it
        jupybox.run(image, ["true"], root=store, network="none", remove=True).wait()
    c = jupybox.run(image, ["sh", "-c", "echo up; exec sleep 600"], root=store, detach=True, network="none",
                    user="1000:1000", workdir="/tmp")
    try:
        pid = c.pid
        assert pid
        memory = _writable_memory(pid)
        assert memory, "PID 1's memory could not be read"
        host = str(store).encode()
        found = {name for name, data in memory.items() if host in data}
        assert not found, f"PID 1 keeps the host path {host!r} in {sorted(found)}"
        # the setup's path buffers touched ~100 KiB of stack (host paths among them): given back
        stack = _private_dirty_kib(pid, ("[stack]",))
        assert stack <= 64, stack
        own = _private_dirty_kib(pid, ("[stack]", "[heap]", ""))
        assert own <= 128, own
    finally:
        c.remove(force=True)
