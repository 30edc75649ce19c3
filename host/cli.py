"""`beexgen-infer`: stream text to a beexgen device and print its predictions.

The device is a board on a serial port, firmware in QEMU (`socket://...` or a pty) or the
x86 host emulator (`--emulator PATH`). This module is the command: options, input files,
output and the summary; host/client.py speaks the protocol, host/transport.py moves the
bytes (docs/INTERNALS.md, "Serial protocol"). host/infer.py is the entry point.
"""
from __future__ import annotations

import csv
import io
import json
import math
import shlex
import sys
from collections import Counter
from dataclasses import dataclass, field

import click

from beexgen.core import protocol, textfile
from beexgen.core.protocol import DeviceError, ProtocolError, Reply, Status, wire_label
from beexgen.host.client import Client
from beexgen.host.transport import TransportError, open_transport

EXIT_OK = 0
EXIT_USAGE = 1          # bad option, unreadable input file, bad artifact dir
EXIT_TRANSPORT = 2      # port missing, no answer, connection lost, hopelessly noisy line
EXIT_DEVICE = 3         # at least one request got an `err` reply (batch: all lines still run)
EXIT_HASH = 4           # the device's model hash differs from --artifact's
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------------------
# input files
# --------------------------------------------------------------------------------------
@dataclass
class Item:
    lineno: int           # 1-based line number in the input (where a table record starts)
    text: str
    gold: str | None = None


class InputError(Exception):
    pass


def read_items(stream: io.TextIOBase, fmt: str, name: str, text_column: str | None,
               label_column: str | None) -> list[Item]:
    """The input lines: plain text (one text a line), or a table read by
    beexgen.core.textfile (TSV with or without a header, CSV), as training reads it."""
    data = stream.read()
    data = data.removeprefix("\ufeff")          # a UTF-8 byte order mark (Excel, Notepad)
    if fmt == "auto":
        lines = [ln for ln in data.splitlines() if ln.strip()]
        tabs = bool(lines) and all("\t" in ln for ln in lines)
        if name.lower().endswith((".csv", ".tsv")):
            fmt = name.lower()[-3:]
        elif text_column or label_column:
            fmt = "tsv" if tabs else "csv"
        else:
            fmt = "tsv" if tabs else "text"
    if fmt == "text":
        return [Item(i, ln) for i, ln in enumerate(data.splitlines(), 1) if ln != ""]
    try:
        rows = textfile.read_table(io.StringIO(data, newline=""), name, delimiter="\t" if fmt == "tsv" else ",",
                                   text_column=text_column, label_column=label_column, label_required=False)
    except textfile.TableError as e:
        raise InputError(str(e)) from None
    return [Item(r.lineno, r.text, r.label.strip() if r.label is not None else None) for r in rows]


# --------------------------------------------------------------------------------------
# output
# --------------------------------------------------------------------------------------
def reply_json(r: Reply) -> dict:
    return {"label": r.label, "cls": r.cls, "conf": r.confidence, "exit": r.exit_depth,
            "blocks": r.n_blocks, "tokens": r.tokens, "cost": r.cost, "unit": r.unit,
            "bmacs": r.bmacs, "flops": r.flops, "logits": r.logits, "logits_hex": r.logits_hex}


def error_json(e: DeviceError) -> dict:
    name = e.status.name if isinstance(e.status, Status) else str(e.status)
    return {"code": int(e.status), "name": name, "detail": e.detail}


def shown(text: str) -> str:
    """Input text for display: undecodable input bytes (kept for the device) become U+FFFD."""
    return text.encode("utf-8", errors="surrogateescape").decode("utf-8", errors="replace")


def reply_text(r: Reply) -> str:
    return f"{r.label} (conf {r.confidence:.2f}) exit {r.exit_depth}/{r.n_blocks} cost {r.cost} {r.unit}"


def is_correct(r: Reply, gold: str, labels: list[str]) -> bool:
    """Gold labels are class names (as in the data file, or in the device's wire form,
    see protocol.wire_label), or class indices when they are not names."""
    gold_w = wire_label(gold)
    if gold_w in labels or not gold.isdigit():
        return gold_w == r.label
    return int(gold) == r.cls


@dataclass
class Tally:
    labels: list
    lines: int = 0
    replies: list = field(default_factory=list)          # (Item, Reply)
    errors: Counter = field(default_factory=Counter)     # status name -> count
    labelled_errors: int = 0                              # labelled lines answered with an error
    unanswered: int = 0                                   # lines never answered (the link failed)
    unanswered_labelled: int = 0

    def add(self, item: Item, r: Reply) -> None:
        self.lines += 1
        self.replies.append((item, r))

    def add_error(self, e: DeviceError, item: Item | None = None) -> None:
        self.lines += 1
        self.errors[error_json(e)["name"]] += 1
        if item is not None and item.gold is not None:
            self.labelled_errors += 1

    def summary(self, blocks: int | None, unit: str | None) -> str:
        n_err = sum(self.errors.values())
        out = [f"summary: {self.lines} line(s), {len(self.replies)} classified, {n_err} device error(s)"
               + (f", {self.unanswered} not answered (link failure)" if self.unanswered else "")]
        if n_err:
            out.append("  device errors: " + ", ".join(f"{k} x{v}" for k, v in sorted(self.errors.items())))
        labelled = [(it, r) for it, r in self.replies if it.gold is not None]
        failed = self.labelled_errors + self.unanswered_labelled
        if labelled or failed:
            right = sum(is_correct(r, it.gold, self.labels) for it, r in labelled)
            total = len(labelled) + failed
            out.append(f"accuracy: {right}/{total} = {100.0 * right / total:.2f}% of the labelled lines "
                       f"({failed} refused or not answered, counted as wrong)")
        if self.replies:
            n_blocks = blocks or max(r.n_blocks for _, r in self.replies)
            hist = Counter(r.exit_depth for _, r in self.replies)       # exit number e -> replies
            top = max(hist.values())
            out.append(f"exit taken (blocks run, of {n_blocks}; 0 = the wide exit):")
            for e in range(0 if hist[0] else 1, n_blocks + 1):          # exit e runs e blocks
                bar = "#" * round(30 * hist[e] / top) if top else ""
                out.append(f"  {e:>2}  {bar:<30} {hist[e]:>6}  {100.0 * hist[e] / len(self.replies):5.1f}%")
            costs = [r.cost for _, r in self.replies]
            u = unit or self.replies[0][1].unit
            out.append(f"mean cost: {sum(costs) / len(costs):.1f} {u} per line "
                       f"(min {min(costs)}, max {max(costs)}); mean tokens "
                       f"{sum(r.tokens for _, r in self.replies) / len(self.replies):.1f}")
        return "\n".join(out)


# --------------------------------------------------------------------------------------
# the command
# --------------------------------------------------------------------------------------
class _Command(click.Command):
    """Map click's usage errors to exit code 1 (click uses 2, which here means transport)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.ClickException as e:
            e.show()
            sys.exit(EXIT_USAGE)
        except click.Abort:
            click.echo("error: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        sys.exit(rv if isinstance(rv, int) else EXIT_OK)


def _fail(msg: str, code: int) -> int:
    click.echo(f"error: {msg}", err=True)
    return code


from beexgen.core.policy import F32_MAX, NAMES, threshold_min  # noqa: E402  (defined once, with the policies)


def _parse_policy(spec: str) -> tuple[str, list[float] | None]:
    """NAME or NAME:t1,t2,...; every threshold a finite number that a float32 holds, >= 0
    (the entropy rule's tau may be negative: core/policy.py threshold_min)."""
    name, colon, rest = spec.partition(":")
    if not name or " " in name:
        raise click.BadParameter(f"{spec!r}: expected NAME or NAME:t1,t2,...", param_hint="--policy")
    if not colon:
        return name, None
    out = []
    for x in rest.split(","):
        try:
            t = float(x)
        except ValueError:
            raise click.BadParameter(f"{spec!r}: thresholds must be numbers, comma separated",
                                     param_hint="--policy") from None
        lo = threshold_min(name) if name in NAMES else 0.0
        if not math.isfinite(t) or t < lo:
            raise click.BadParameter(f"{spec!r}: threshold {x!r} must be a finite number >= {lo:.7g}",
                                     param_hint="--policy")
        if abs(t) > F32_MAX:
            raise click.BadParameter(f"{spec!r}: threshold {x!r} is beyond the float32 range (max {F32_MAX:.7g})",
                                     param_hint="--policy")
        out.append(t)
    return name, out


def _finite_seconds(ctx, param, value):
    if value is not None and not math.isfinite(value):
        raise click.BadParameter(f"{value!r} is not a finite number of seconds")
    return value


HELP = f"""Send text to a beexgen device and print its predictions.

\b
Modes:
  interactive   stdin is a terminal and no FILE: type a sentence, get
                `label (conf 0.93) exit 2/4 cost 123456 instr`
  batch         FILE (or - for stdin, or piped stdin): one text per line,
                or TSV (`label<TAB>text` lines, or a header naming the text and
                label columns), or CSV (--text-column/--label-column);
                prints one prediction per line, then a summary on stderr
                (accuracy if labelled, exit-depth histogram, mean cost)
  --info        print the device's model information and exit

\b
Exit codes:
  {EXIT_OK}  ok
  {EXIT_USAGE}  usage error, unreadable input file or artifact
  {EXIT_TRANSPORT}  transport error: port missing, no answer, connection lost
  {EXIT_DEVICE}  the device answered `err` to at least one request (batch: all
     lines are still processed, errors are reported per line)
  {EXIT_HASH}  the device's model hash differs from --artifact (see --no-check)
"""


@click.command(cls=_Command, help=HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("file", required=False, metavar="[FILE]")
@click.option("--port", "-p", envvar="BEEXGEN_PORT", metavar="SPEC",
              help="Device: serial path (/dev/ttyACM0, a pty), socket://HOST:PORT, or exec:PROGRAM [ARGS]. "
                   "Default: $BEEXGEN_PORT.")
@click.option("--emulator", "-e", metavar="PATH", help="Run this host-emulator executable (same as --port exec:PATH).")
@click.option("--baud", default=115200, show_default=True, help="Baud rate for serial ports.")
@click.option("--artifact", "-a", metavar="DIR", help="Artifact directory; its meta.json hash must equal the device's.")
@click.option("--no-check", is_flag=True, help="Warn instead of failing when the artifact hash differs.")
@click.option("--timeout", "-t", default=5.0, show_default=True, type=click.FloatRange(min=0.01, max=86400),
              callback=_finite_seconds,
              help="Seconds to wait for each reply (and for the first answer at start).")
@click.option("--retries", default=2, show_default=True, type=click.IntRange(min=0),
              help="Times to resend a request whose reply timed out or was lost.")
@click.option("--window", "-w", type=click.IntRange(min=1), metavar="N",
              help="Requests in flight at once (pipelining). Default and maximum: the device's window "
                   "(`--info` shows it). The bytes in flight are bounded too, by the device's receive "
                   "ring (`ring=`), so nothing is ever lost.")
@click.option("--reconnect-wait", default=5.0, show_default=True, type=click.FloatRange(min=0, max=86400),
              callback=_finite_seconds,
              help="Seconds to wait for a vanished serial port to come back (0: give up at once).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object per input line (or for --info).")
@click.option("--policy", metavar="NAME[:t1,t2]", help="Switch the device's exit policy first (e.g. entropy:0.3).")
@click.option("--info", "show_info", is_flag=True, help="Print the device information and exit.")
@click.option("--selftest", is_flag=True,
              help="Run the library's self-test on the device (its golden test sentences: class, exit and logit "
                   "bits), print the mismatches and exit (code 0 only when there are none).")
@click.option("--format", "fmt", type=click.Choice(["auto", "text", "tsv", "csv"]), default="auto", show_default=True,
              help="Input format; auto: by the name (*.csv, *.tsv), else TSV when every line has a TAB, "
                   "else CSV with column options, else text.")
@click.option("--text-column", metavar="NAME|N", help="CSV column holding the text (default: 'text').")
@click.option("--label-column", metavar="NAME|N", help="CSV column holding the gold label (default: 'label' if present).")
@click.option("--progress/--no-progress", default=None, help="Progress bar on stderr (default: when stderr is a terminal).")
def main(file, port, emulator, baud, artifact, no_check, timeout, retries, window, reconnect_wait, as_json,
         policy, show_info, fmt, text_column, label_column, progress, selftest=False):
    if port and emulator:
        raise click.UsageError("give --port or --emulator, not both")
    if emulator:
        port = "exec:" + shlex.quote(emulator)
    if not port:
        raise click.UsageError("no device: pass --port SPEC or --emulator PATH (or set BEEXGEN_PORT)")
    pol = _parse_policy(policy) if policy else None
    want_hash = _artifact_hash(artifact) if artifact is not None else None   # "" is refused, not skipped

    items = None
    interactive = False
    if not show_info and not selftest:
        if file is None and sys.stdin.isatty():
            interactive = True
        else:
            name = "<stdin>" if file in (None, "-") else file
            try:
                if file in (None, "-"):
                    stream = io.TextIOWrapper(sys.stdin.buffer, encoding="utf-8", errors="surrogateescape")
                else:
                    stream = open(file, encoding="utf-8", errors="surrogateescape", newline="")
                with stream:
                    items = read_items(stream, fmt, name, text_column, label_column)
            except OSError as e:
                return _fail(f"cannot read {name}: {e.strerror or e}", EXIT_USAGE)
            except (InputError, csv.Error) as e:
                return _fail(str(e), EXIT_USAGE)

    try:
        transport = open_transport(port, timeout=timeout, baudrate=baud)
    except TransportError as e:
        return _fail(str(e), EXIT_TRANSPORT)
    client = Client(transport, timeout=timeout, retries=retries, reconnect_wait=reconnect_wait, window=window)
    try:
        client.handshake()
        info = client.info()
        if want_hash is not None and info["hash"] != want_hash:
            msg = (f"device model hash {info['hash'][:16]}... differs from artifact {artifact} "
                   f"({want_hash[:16]}...): flash/build the matching firmware, or pass --no-check")
            if not no_check:
                return _fail(msg, EXIT_HASH)
            click.echo(f"warning: {msg}", err=True)
        if window and window > info["window"]:
            click.echo(f"warning: --window {window} is more than the device's window {info['window']}: "
                       f"using {info['window']}", err=True)
        if pol is not None:
            try:
                r = client.set_policy(*pol)
            except DeviceError as e:
                return _fail(f"--policy {policy}: the device refused it: {e}", EXIT_DEVICE)
            thr = ",".join(f"{t:g}" for t in protocol.parse_numbers(r.fields["thr"]))
            click.echo(f"policy: {r.fields['policy']} thr={thr}", err=True)
        if show_info:
            _print_info(info, as_json)
            return EXIT_OK
        if selftest:
            bad = client.selftest()
            click.echo("selftest: no golden sentences in this build (export with the training run's split)"
                       if bad < 0 else f"selftest: {bad} mismatches" + (" (ok)" if bad == 0 else " (FAILED)"))
            return EXIT_OK if bad == 0 else EXIT_DEVICE
        if interactive:
            return _interactive(client, info, as_json)
        return _batch(client, info, items, as_json, progress)
    except DeviceError as e:
        return _fail(f"{transport.spec}: {e}", EXIT_DEVICE)
    except (TransportError, ProtocolError) as e:
        return _fail(str(e), EXIT_TRANSPORT)
    except KeyboardInterrupt:
        return _fail("interrupted", EXIT_INTERRUPTED)
    finally:
        client.close()


def _artifact_hash(d: str) -> str:
    """The content hash of artifact directory d, recomputed from its files, after the
    whole artifact check (beexgen/core/validate.py: pure Python, no weights loaded)."""
    from beexgen.core.validate import ArtifactError, check_dir
    try:
        return check_dir(d)["hash"]
    except ArtifactError as e:
        raise click.ClickException(f"--artifact {e}") from None
    except OSError as e:
        raise click.ClickException(f"--artifact {d}: {e.strerror or e}") from None


def _print_info(info: dict, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(info))
        return
    for k in protocol.INFO_KEYS:
        v = info[k]
        if k == "thr":
            v = [f"{t:g}" for t in v]
        click.echo(f"{k + ':':<9} {','.join(map(str, v)) if isinstance(v, list) else v}")


def _interactive(client: Client, info: dict, as_json: bool) -> int:
    click.echo(f"connected: {info['board']}, model {info['hash'][:12]}, classes {','.join(info['labels'])}, "
               f"policy {info['policy']}. Type a sentence; Ctrl-D quits.", err=True)
    had_error = False
    while True:
        try:
            text = input("> ")
        except EOFError:
            click.echo("", err=True)
            return EXIT_DEVICE if had_error else EXIT_OK
        if not text.strip():
            continue
        try:
            r = client.classify(text)
        except DeviceError as e:
            had_error = True
            click.echo(json.dumps({"error": error_json(e)}) if as_json else f"error: {e}")
            continue
        click.echo(json.dumps(reply_json(r)) if as_json else reply_text(r))


class _NoBar:
    disable = True

    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress_bar(total: int, progress: bool | None):
    """tqdm on stderr (None: when stderr is a terminal). tqdm is optional: a host-only
    install (pyserial and click) runs without a bar."""
    if progress is False:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        if progress:
            click.echo("warning: --progress needs tqdm (pip install tqdm); no progress bar", err=True)
        return _NoBar()
    return tqdm(total=total, unit="line", file=sys.stderr, disable=None if progress is None else False,
                dynamic_ncols=True, leave=False)


def _batch(client: Client, info: dict, items: list[Item], as_json: bool, progress) -> int:
    tally = Tally(info["labels"])
    code = EXIT_OK
    bar = _progress_bar(len(items), progress)

    def emit(s: str) -> None:
        if bar.disable:
            click.echo(s)
        else:
            bar.write(s, file=sys.stdout)
    try:
        for item, r in zip(items, client.classify_many([it.text for it in items])):
            if isinstance(r, DeviceError):
                e = r
                tally.add_error(e, item)
                if as_json:
                    emit(json.dumps({"line": item.lineno, "text": shown(item.text), "gold": item.gold,
                                     "error": error_json(e)}, ensure_ascii=False))
                else:
                    emit(f"error: line {item.lineno}: {e}")
            else:
                tally.add(item, r)
                if as_json:
                    obj = {"line": item.lineno, "text": shown(item.text), "gold": item.gold, **reply_json(r)}
                    emit(json.dumps(obj, ensure_ascii=False))
                else:
                    s = reply_text(r)
                    if item.gold is not None:
                        s += f"  | gold {item.gold}: {'right' if is_correct(r, item.gold, info['labels']) else 'wrong'}"
                    emit(s)
            bar.update(1)
    except (TransportError, ProtocolError) as e:
        code = EXIT_TRANSPORT
        failure = str(e)
    except KeyboardInterrupt:
        code = EXIT_INTERRUPTED
        failure = "interrupted"
    finally:
        bar.close()
    if code != EXIT_OK:
        done = tally.lines
        tally.unanswered = len(items) - done
        tally.unanswered_labelled = sum(it.gold is not None for it in items[done:])
    click.echo(tally.summary(info["blocks"], info["unit"]), err=True)
    noisy = {k: v for k, v in client.stats.items() if k != "handshakes" or v > 1}
    if noisy:
        click.echo("link: " + ", ".join(f"{k} {v}" for k, v in sorted(noisy.items())), err=True)
    if code != EXIT_OK:
        return _fail(f"{failure} (after {done} of {len(items)} lines)", code)
    return EXIT_DEVICE if tally.errors else EXIT_OK


if __name__ == "__main__":
    main()
