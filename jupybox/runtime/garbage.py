"""Prune and garbage: stopped containers, and what a crash or a kill -9 left (half-made directories
and their cgroups, spare directories, temp files of dead writers, dangling names, notebook cells'
files, networks of gone stores); and ``reset``, everything a store made on the host.

A part of :class:`~jupybox.runtime.engine.Engine`, kept in a file of its own (see ``configure``).
"""

from __future__ import annotations

import os

from .. import errors
from ..linux import userns
from .state import Status, process_running


class GarbageMixin:
    def prune(self, busy: set[str] = frozenset()) -> dict:
        """Remove stopped containers and whatever a crash left: half-made directories and their
        cgroups, tmp files, dangling names. ``busy``: containers the caller (the store's service) is
        starting or ending: not touched, whatever their files say."""
        removed = []
        for rec in self.records.all():
            if rec.id in busy or not rec.dir.exists():
                continue
            state = rec.state()
            if state.status is Status.RUNNING:
                continue
            self.remove(rec)
            removed.append(rec.id)
        result = {"containers": removed}
        result.update(self.collect_garbage(busy))
        # what a load, pull or build killed midway left (never what one in progress holds)
        result["images"] = self.store.remove_crash_leftovers()
        return result

    def collect_garbage(self, busy: set[str] = frozenset()) -> dict:
        """What a crash left: directories without config.json whose owner is gone (a sandbox made
        ahead, a container being created or removed), with their cgroups and the processes in
        them; tmp/rm-*; dangling names; networks' endpoints of containers that are gone."""
        cgroups_removed = []
        for d in list(self.layout.containers.iterdir()) if self.layout.containers.exists() else []:
            if d.name in busy or (d / "config.json").exists() or self._staged_alive(d.name):
                continue
            try:
                cg = self.cgroups.open(d.name)
                if cg.exists():
                    cg.remove()
                    cgroups_removed.append(d.name)
            except errors.JupyboxError:
                continue
            userns.rmtree(d)
        for d in list(self.layout.tmp.iterdir()) if self.layout.tmp.exists() else []:
            if d.name.startswith("rm-"):
                # a removal cut short: its cgroup may still be there (see Engine.cleanup)
                cid = d.name[3:]
                if cid not in busy and all(c in "0123456789abcdef" for c in cid) and len(cid) == 64:
                    try:
                        if self.cgroups.open(cid).exists():
                            self._remove_cgroup(cid)
                            cgroups_removed.append(cid)
                    except errors.JupyboxError:
                        continue
                userns.rmtree(d)
        # the state files' temp files of processes that are gone (a writer killed, or a service)
        for d in list(self.layout.containers.iterdir()) if self.layout.containers.exists() else []:
            try:
                entries = os.listdir(d)
            except OSError:
                continue
            for name in entries:
                parts = name.split(".")
                if name.startswith(".") and name.endswith(".tmp") and len(parts) >= 4 and parts[-2].isdigit() \
                        and not process_running(int(parts[-2])):
                    try:
                        os.unlink(d / name)
                    except OSError:
                        pass
        # the emptied directories kept for the next containers are not in use either
        for d in list(self.layout.spare.iterdir()) if self.layout.spare.exists() else []:
            # taken with a rename first, as a container being staged takes one: whoever renames it
            # owns it (removing it in place would empty a directory a new container just took)
            trash = self.layout.tmp / f"rm-spare-{d.name}"
            try:
                os.rename(d, trash)
            except OSError:
                continue
            userns.rmtree(trash)
        names = self.records.names
        if names.exists():
            for link in names.iterdir():
                try:
                    target = os.readlink(link)
                except OSError:
                    continue
                if not (self.layout.containers / target).exists():
                    link.unlink(missing_ok=True)
        try:
            self.cgroups.remove_parent_if_empty()
        except errors.JupyboxError:
            pass
        records = self.records.all()
        from . import cellfiles

        named = set()
        for r in records:
            try:
                named.add((r.config["spec"].get("labels") or {}).get(cellfiles.LABEL))
            except (errors.JupyboxError, OSError):
                continue
        result = {"cgroups": cgroups_removed, "cells": cellfiles.collect(self.layout, named)}
        from .. import network

        try:  # also the bridges and tables of stores that are gone (network.ownership)
            result["network"] = network.networks(self.layout).prune({r.id for r in records})
        except errors.JupyboxError as e:
            result["network"] = {"error": str(e)}
        return result

    def reset(self) -> dict:
        """Everything this store made on the host, then the store itself (``system reset``): the
        caller has stopped its service. Its containers' processes and cgroups, its bridges and
        nftables table, its cgroup parent when empty."""
        removed = {"containers": [], "cgroups": []}
        for d in list(self.layout.containers.iterdir()) if self.layout.containers.exists() else []:
            try:
                cg = self.cgroups.open(d.name)
                if cg.exists():
                    cg.remove()  # kills what is left in it first
                    removed["cgroups"].append(d.name)
            except errors.JupyboxError:
                pass
            removed["containers"].append(d.name)
        from .. import network

        try:
            removed["network"] = network.networks(self.layout).remove_kernel_objects()
        except errors.JupyboxError as e:
            removed["network"] = {"error": str(e)}
        try:
            self.cgroups.remove_parent_if_empty()
        except errors.JupyboxError:
            pass
        userns.rmtree(self.layout.root)
        return removed

    def _staged_alive(self, cid: str) -> bool:
        try:
            return process_running(int((self.layout.containers / cid / "staged-by").read_text()))
        except (OSError, ValueError):
            return False

    def _remove_cgroup(self, cid: str) -> None:
        try:
            cg = self.cgroups.open(cid)
            if cg.exists():
                cg.remove()
        finally:
            self.cgroups.remove_parent_if_empty()
