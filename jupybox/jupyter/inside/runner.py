# jupybox %%container runner: runs INSIDE the container, with the image's python3 (3.6 or later;
# -i/-o need 3.8). Standalone on purpose: the image has no jupybox. It executes cell.py as
# __main__, like an IPython cell: the -i values loaded first, the last expression displayed, the
# traceback shown with the notebook cell's own line numbers, the -o values sent back.
#
# What it says to the notebook goes through the cell directory's FIFO ("channel"), when the
# kernel listens there (a foreground cell): one JSON line per message, raw bytes after it when
# the line says "bytes". Without a listener (--bg) tracebacks go to stderr, as a script's would.
import ast
import json
import linecache
import os
import signal
import sys
import types

PROTOCOL = 5
WIDTH = 75  # IPython's traceback width


class Channel:
    """The writing end of the cell's FIFO; every method is a no-op when nobody listens."""

    def __init__(self, path):
        self.fd = None
        if not path:
            return
        try:  # O_NONBLOCK: fails at once (ENXIO) when the kernel is not reading
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            return
        import fcntl

        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        self.fd = fd

    def send(self, message, data=b""):
        if self.fd is None:
            return False
        if data:
            message = dict(message, bytes=len(data))
        try:
            for chunk in (json.dumps(message).encode() + b"\n", data):
                view = memoryview(chunk)
                while view:
                    view = view[os.write(self.fd, view):]
        except OSError:  # the kernel stopped listening
            self.fd = None
            return False
        return True


# -- tracebacks, as IPython shows them -------------------------------------------------------
def _context(filename, lineno, around=2):
    out = []
    lines = linecache.getlines(filename)
    if not lines or lineno is None:
        return out
    first, last = max(1, lineno - around), min(len(lines), lineno + around)
    width = len(str(last))
    for n in range(first, last + 1):
        mark = "---->" if n == lineno else "     "
        out.append("%s %s %s" % (mark, str(n).rjust(width), lines[n - 1].rstrip("\n")))
    return out


def _where(frame_summary, code, cell_name):
    filename, lineno, name = frame_summary
    place = filename if filename == cell_name else "File %s:%s" % (filename, lineno)
    head = "%s, line %s" % (place, lineno) if filename == cell_name else place
    if name != "<module>":
        args = ""
        if code is not None:
            n = code.co_argcount + getattr(code, "co_kwonlyargcount", 0)
            names = list(code.co_varnames[:n])
            if code.co_flags & 0x04:
                names.append("*" + code.co_varnames[n])
                n += 1
            if code.co_flags & 0x08:
                names.append("**" + code.co_varnames[n])
            args = ", ".join(names)
        head += ", in %s(%s)" % (name, args)
    return head


def _frames(tb, runner_file):
    while tb is not None:
        code = tb.tb_frame.f_code
        if code.co_filename != runner_file:
            yield (code.co_filename, tb.tb_lineno, code.co_name), code
        tb = tb.tb_next


def _one(exc, runner_file, cell_name):
    import traceback

    etype = type(exc)
    ename = etype.__name__ if etype.__module__ in ("builtins", "__main__") else "%s.%s" % (etype.__module__,
                                                                                           etype.__qualname__)
    tail = "Traceback (most recent call last)"
    lines = ["-" * WIDTH, ename.ljust(WIDTH - len(tail)) + tail]
    for summary, code in _frames(exc.__traceback__, runner_file):
        lines.append(_where(summary, code, cell_name))
        lines.extend(_context(summary[0], summary[1]))
        lines.append("")
    if isinstance(exc, SyntaxError) and exc.filename:
        lines = ["  %s, line %s" % (exc.filename if exc.filename == cell_name else "File " + exc.filename, exc.lineno)]
        if exc.text:
            text = exc.text.rstrip("\n")
            lines.append("    " + text.lstrip())
            if exc.offset:
                lines.append("    " + " " * max(0, exc.offset - 1 - (len(text) - len(text.lstrip()))) + "^")
        lines.append("")
    only = traceback.format_exception_only(etype, exc)[-1].rstrip("\n")
    lines.append(only if only != ename else ename + ": ")
    return lines


def format_exception(exc, runner_file, cell_name):
    """IPython's plain traceback of ``exc`` (and the exceptions it was raised from), without the
    runner's frames; lines of the cell are numbered as in the notebook cell."""
    chain, seen = [], set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        chain.append(exc)
        if exc.__cause__ is not None:
            exc = exc.__cause__
        elif exc.__context__ is not None and not exc.__suppress_context__:
            exc = exc.__context__
        else:
            exc = None
    lines = []
    for i, e in enumerate(reversed(chain)):
        if i:
            nxt = list(reversed(chain))[i]
            lines += ["", "The above exception was the direct cause of the following exception:" if
                      nxt.__cause__ is not None else
                      "During handling of the above exception, another exception occurred:", ""]
        lines += _one(e, runner_file, cell_name)
    return lines


# -- rich output -------------------------------------------------------------------------------
def _b64(data):
    import base64

    return base64.b64encode(data).decode("ascii")


def _figure_png(fig):
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return buf.getvalue()


def mimebundle(obj):
    """What IPython would display for ``obj``: its rich forms and text/plain."""
    if type(obj).__module__.startswith("matplotlib.figure"):
        return {"image/png": _b64(_figure_png(obj)), "text/plain": repr(obj)}, {}
    try:
        from IPython.core.formatters import DisplayFormatter
    except Exception:  # noqa: BLE001 - no IPython in the image: its _repr_*_ methods by hand
        DisplayFormatter = None
    if DisplayFormatter is not None:
        try:
            data, meta = DisplayFormatter().format(obj)
            for key, value in list(data.items()):
                if isinstance(value, bytes):
                    data[key] = _b64(value)
            return data, meta
        except Exception:  # noqa: BLE001
            pass
    data, meta = {}, {}
    for mime, method in (("text/html", "_repr_html_"), ("text/markdown", "_repr_markdown_"),
                         ("image/svg+xml", "_repr_svg_"), ("image/png", "_repr_png_"),
                         ("image/jpeg", "_repr_jpeg_"), ("text/latex", "_repr_latex_"),
                         ("application/json", "_repr_json_")):
        fn = getattr(obj, method, None)
        if fn is None or isinstance(obj, type):
            continue
        try:
            value = fn()
        except Exception:  # noqa: BLE001
            continue
        if isinstance(value, tuple):
            value, meta[mime] = value
        if value is not None:
            data[mime] = _b64(value) if isinstance(value, bytes) else value
    import pprint

    data["text/plain"] = pprint.pformat(obj)
    return data, meta


def show_figures(channel):
    """plt.show(), and the end of a cell: every open figure as a PNG, then closed (IPython's inline
    backend does the same)."""
    plt = sys.modules.get("matplotlib.pyplot")
    if plt is None:
        return
    from matplotlib._pylab_helpers import Gcf

    for manager in Gcf.get_all_fig_managers():
        fig = manager.canvas.figure
        if fig.axes or fig.texts or fig.images:
            channel.send({"kind": "display", "data": {"image/png": _b64(_figure_png(fig)), "text/plain": repr(fig)},
                          "metadata": {}})
    plt.close("all")


class PyplotHook(object):
    """Makes plt.show() send the figures (matplotlib.pyplot is patched as it is imported; nothing is
    imported before the cell does, and no environment variable reaches its subprocesses)."""

    def __init__(self, channel):
        self.channel = channel

    def find_spec(self, name, path=None, target=None):
        if name != "matplotlib.pyplot":
            return None
        import importlib.util

        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        channel, load = self.channel, spec.loader.exec_module

        def exec_module(module):
            load(module)
            module.show = lambda *args, **kwargs: show_figures(channel)

        spec.loader.exec_module = exec_module
        return spec


# -- values in and out ---------------------------------------------------------------------------
def load_inputs(d, meta, ns, channel):
    path = os.path.join(d, "in.pkl")
    if not meta.get("inputs"):
        return
    import pickle

    lib = meta.get("lib")
    if lib and os.path.isdir(lib):
        sys.path.insert(0, lib)  # the kernel's cloudpickle: functions and classes need the same one
    try:
        with open(path, "rb") as f:
            head = pickle.load(f)
            for name in head["names"]:
                channel.send({"kind": "stage", "stage": "loading", "name": name})
                try:
                    ns[name] = pickle.load(f)
                except Exception as e:  # noqa: BLE001
                    why = "%s: %s" % (type(e).__name__, e)
                    theirs = tuple(head.get("python") or ())
                    if theirs and theirs[:2] != tuple(sys.version_info[:2]):
                        why += ("; the kernel runs Python %s and the image Python %s: functions and classes "
                                "travel as bytecode, which needs the same Python version"
                                % (".".join(map(str, theirs[:2])), "%d.%d" % sys.version_info[:2]))
                    report_input_error(channel, name, why)
    finally:
        if lib in sys.path:
            sys.path.remove(lib)
        try:
            os.unlink(path)  # the values live in this process now; the file may hold user data
        except OSError:
            pass
    channel.send({"kind": "stage", "stage": "running"})


def report_input_error(channel, name, why):
    msg = "-i %s: cannot be unpickled in the container: %s" % (name, why)
    if not channel.send({"kind": "input-error", "name": name, "message": msg}):
        sys.stderr.write("jupybox: %s\n" % msg)
    sys.exit(1)


def send_outputs(meta, ns, channel):
    names = meta.get("outputs") or []
    if not names:
        return
    try:
        import cloudpickle as picker
    except ImportError:
        import pickle as picker
    sizes, errs, blobs = {}, {}, []
    for name in names:
        if name not in ns:
            errs[name] = "the cell did not define it"
            continue
        try:
            blob = picker.dumps(ns[name], protocol=PROTOCOL)
        except Exception as e:  # noqa: BLE001
            errs[name] = "%s: %s" % (type(e).__name__, e)
            continue
        sizes[name] = len(blob)
        blobs.append(blob)
    channel.send({"kind": "outputs", "sizes": sizes, "errors": errs}, b"".join(blobs))


# -- the cell -----------------------------------------------------------------------------------
def run_cell(d, meta, channel):
    cell_name = meta.get("filename") or os.path.join(d, "cell.py")
    with open(os.path.join(d, "cell.py"), encoding="utf-8") as f:
        src = f.read()
    # the notebook cell's lines (the %%container line included) for the tracebacks and inspect
    shown = "".join(meta.get("header") or []) + src
    linecache.cache[cell_name] = (len(shown), None, shown.splitlines(True), cell_name)
    mod = types.ModuleType("__main__")
    mod.__file__ = os.path.join(d, "cell.py")
    mod.__builtins__ = __builtins__
    sys.modules["__main__"] = mod  # classes defined in the cell pickle as __main__.X
    ns = mod.__dict__
    sys.argv = [mod.__file__]
    try:
        load_inputs(d, meta, ns, channel)
        tree = compile("\n" * int(meta.get("offset") or 0) + src, cell_name, "exec", ast.PyCF_ONLY_AST)
        last = None
        if (meta.get("display") and tree.body and isinstance(tree.body[-1], ast.Expr)
                and not src.rstrip().endswith(";")):
            last = ast.Expression(tree.body.pop().value)
        exec(compile(tree, cell_name, "exec"), ns)
        if last is not None:
            value = eval(compile(last, cell_name, "eval"), ns)
            if value is not None:
                ns["_"] = value
                data, md = mimebundle(value)
                channel.send({"kind": "result", "data": data, "metadata": md})
        if meta.get("display"):
            show_figures(channel)
    except SystemExit as e:
        return e.code
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt too: the user's frames only
        interrupted = isinstance(e, KeyboardInterrupt)
        lines = format_exception(e, os.path.abspath(__file__), cell_name)
        sent = channel.send({"kind": "error", "ename": type(e).__name__, "evalue": str(e), "traceback": lines,
                             "interrupt": interrupted})
        if not sent:
            sys.stderr.write("\n".join(lines) + "\n")
        sys.stderr.flush()
        if interrupted:  # die of SIGINT, as Python does (exit 130)
            sys.stdout.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
            return 130
        return 1
    send_outputs(meta, ns, channel)
    return 0


def main():
    for stream in (sys.stdout, sys.stderr):
        try:  # like a terminal: whole lines, as soon as they are complete
            stream.reconfigure(line_buffering=True, write_through=False)
        except Exception:  # noqa: BLE001
            pass
    d = sys.argv[1]
    with open(os.path.join(d, "meta.json"), encoding="utf-8") as f:
        meta = json.load(f)
    channel = Channel(os.path.join(d, "channel") if meta.get("channel") else None)
    if meta.get("display"):
        sys.meta_path.insert(0, PyplotHook(channel))
    status = run_cell(d, meta, channel)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(status)


if __name__ == "__main__":
    main()
