"""Is this GPU node exposed? The driver and the NVIDIA Container Toolkit against NVIDIA's security bulletins, and
the settings that let a container reach GPUs or the host it should not.

    python 01_node_security.py                        # every check; exit code = the worst verdict
    python 01_node_security.py --check toolkit        # one check (driver, toolkit, settings, runtimes, cdi)
    python 01_node_security.py --json                 # machine-readable, for scripts and fleet sweeps
    python 01_node_security.py --root /mnt/node       # read the configuration files under another root
    python 01_node_security.py --table toolkit        # the advisory table as Markdown (toolkit, driver, exporter)

Exit codes follow the health check's (Nagios) convention: 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN. UNKNOWN means a
version or file could not be read, and says which; it never means "fine". A usage error exits 3 too, never 2.
A known CVE with a CVSS score of 7.0 or more that applies is CRITICAL, a lower one WARN; a risky setting is WARN.
It reads only: files under --root (default /), `nvidia-ctk --version`, and the driver version (NVML, else
`nvidia-smi`). Versions always come from this machine's tools; --root moves only the configuration files.
The known bulletins are in advisories.toml beside this file (--advisories FILE); add newer ones there.
Needs: Python 3.11+; nvidia-ml-py optional (pip install nvidia-ml-py), else nvidia-smi.
"""
import argparse
import datetime
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

try:
    import pynvml
except ImportError:  # a node without nvidia-ml-py: nvidia-smi still answers
    pynvml = None

OK, WARN, CRITICAL, UNKNOWN = 0, 1, 2, 3
NAMES = {OK: "OK", WARN: "WARN", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
RANK = {OK: 0, UNKNOWN: 1, WARN: 2, CRITICAL: 3}  # which verdict wins when findings are combined
CHECKS = ["driver", "toolkit", "settings", "runtimes", "cdi"]
MODES = ("legacy", "cdi")
TOOLKIT_CONFIG = "etc/nvidia-container-runtime/config.toml"
OPERATOR_TOOLKIT = "usr/local/nvidia/toolkit"  # where the GPU Operator installs the toolkit on the host
OPERATOR_CONFIG = OPERATOR_TOOLKIT + "/.config/nvidia-container-runtime/config.toml"
CDI_DIRS = ("etc/cdi", "var/run/cdi", "run/cdi")
ENGINE_FILES = ("etc/containerd/config.toml", "etc/containerd/conf.d/*.toml", "etc/crio/crio.conf",
                "etc/crio/crio.conf.d/*", "etc/docker/daemon.json")
VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:-rc\.(\d+))?")


class Unreadable(Exception):
    """A file, tool or value the check needs and cannot read; str() is the one line to print."""


def version(text: str) -> tuple:
    """'1.17.8' -> (1, 17, 8, inf); '1.19.0-rc.7' -> (1, 19, 0, 7), before 1.19.0; anything else raises."""
    m = VERSION.fullmatch(text.strip())
    if not m:
        raise Unreadable(f"{text.strip()!r} is not a version")
    return (int(m[1]), int(m[2]), int(m[3] or 0), math.inf if m[4] is None else int(m[4]))


def combine(findings):
    worst = max((v for v, _ in findings), key=RANK.get)
    return worst, [f"{NAMES[v]}: {line}" for v, line in findings]


def severity(cvss: float) -> int:
    return CRITICAL if cvss >= 7.0 else WARN


def load_advisories(path: Path) -> dict:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        for row in data["toolkit"]:
            for r in row["ranges"]:
                version(r["below"]), version(r.get("from", "0.0.0"))
                if not set(r["modes"]) <= set(MODES):
                    raise ValueError(f"{row['cve']}: modes {r['modes']} are not among {MODES}")
        for row in data["driver"]:
            for branch, fixed in row["fixed"].items():
                if not re.fullmatch(r"R\d+", branch) or version(fixed)[0] != int(branch[1:]):
                    raise ValueError(f"bulletin {row['bulletin']}: {branch} = {fixed!r} is not a version of that branch")
        data["checked"].isoformat()
    except (OSError, tomllib.TOMLDecodeError, KeyError, TypeError, AttributeError, ValueError, Unreadable) as err:
        what = f"missing key {err}" if isinstance(err, KeyError) else str(err)
        raise SystemExit(f"advisories file {path}: {what}") from None
    return data


# ---- reading the node --------------------------------------------------------------------------------------------
def driver_version() -> tuple[str, str]:
    """(version, where it came from); NVML first, then nvidia-smi."""
    reasons = []
    if pynvml is not None:
        try:
            pynvml.nvmlInit()
            try:
                found = pynvml.nvmlSystemGetDriverVersion()
            finally:
                pynvml.nvmlShutdown()
            return (found.decode() if isinstance(found, bytes) else found), "NVML"
        except pynvml.NVMLError as err:
            reasons.append(f"NVML says {err}")
    else:
        reasons.append("nvidia-ml-py is not installed")
    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        reasons.append("no nvidia-smi on PATH")
    except subprocess.TimeoutExpired:
        reasons.append("nvidia-smi did not answer in 30 s")
    else:
        lines = done.stdout.split()
        if done.returncode == 0 and lines:
            return lines[0], "nvidia-smi"
        reasons.append(f"nvidia-smi exited {done.returncode}: {(done.stdout + done.stderr).strip()[:120]}")
    raise Unreadable("no driver version: " + "; ".join(reasons))


def toolkit_version(root: Path, ctk: str | None) -> tuple[str, str]:
    """(version, path of the nvidia-ctk that said it)."""
    candidates = [ctk] if ctk else [shutil.which("nvidia-ctk")]
    if not ctk and root == Path("/"):
        candidates.append(str(root / OPERATOR_TOOLKIT / "nvidia-ctk"))
    binary = next((c for c in candidates if c and os.access(c, os.X_OK)), None)
    if binary is None:
        where = ctk or "PATH or /" + OPERATOR_TOOLKIT
        raise Unreadable(f"no nvidia-ctk in {where}: the toolkit is not installed here, or pass --ctk PATH")
    try:
        done = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as err:
        raise Unreadable(f"{binary} --version failed: {err}") from None
    m = re.search(r"version\s+(\S+)", done.stdout)
    if done.returncode != 0 or not m:
        said = (done.stdout + done.stderr).strip().splitlines() or ["nothing"]
        raise Unreadable(f"{binary} --version exited {done.returncode} and printed {said[0][:120]!r}: no version")
    version(m[1])  # raises on e.g. "unknown" (a build without its version set)
    return m[1], binary


def read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as err:
        raise Unreadable(f"{path}: cannot read it ({err.__class__.__name__}: {err})") from None
    except tomllib.TOMLDecodeError as err:
        raise Unreadable(f"{path}: not valid TOML ({err})") from None


def toolkit_config(root: Path, config: str | None) -> tuple[Path, dict]:
    paths = [Path(config)] if config else [root / TOOLKIT_CONFIG, root / OPERATOR_CONFIG]
    for path in paths:
        if path.exists():
            return path, read_toml(path)
    raise Unreadable(f"no toolkit configuration at {' or '.join(map(str, paths))}: the toolkit is not installed"
                     " here, or its file is elsewhere (pass --config FILE)")


def flag(table: dict, key: str, default: bool, path: Path) -> bool:
    value = table.get(key, default)
    if not isinstance(value, bool):
        raise Unreadable(f"{path}: {key} = {value!r} is not true or false (the toolkit cannot load this file either)")
    return value


def cdi_specs(root: Path) -> list[tuple[Path, str | None, str]]:
    """(spec file, its kind, its text) under the CDI spec directories; an unreadable directory or file raises."""
    found, seen = [], set()
    for folder in (root / d for d in CDI_DIRS):
        try:
            if not folder.is_dir() or folder.resolve() in seen:
                continue
            seen.add(folder.resolve())
            files = sorted(folder.iterdir())
        except OSError as err:
            raise Unreadable(f"{folder}: cannot list it ({err})") from None
        for path in files:
            if path.suffix in (".yaml", ".yml", ".json"):
                try:
                    text = path.read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as err:
                    raise Unreadable(f"{path}: cannot read it ({err})") from None
                if path.suffix == ".json":
                    try:
                        kind = json.loads(text).get("kind")
                    except (json.JSONDecodeError, AttributeError) as err:
                        raise Unreadable(f"{path}: not a JSON CDI spec ({err})") from None
                else:
                    m = re.search(r"""^kind:\s*["']?([\w./-]+)""", text, re.M)  # a top-level key of the YAML
                    kind = m[1] if m else None
                found.append((path, kind, text))
    return found


def hooks_without_env(path: Path, text: str) -> tuple[int, int]:
    """(hooks, hooks without an env list) in a CDI spec. Toolkit 1.17.8 and later write an env into every hook."""
    if path.suffix == ".json":
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as err:
            raise Unreadable(f"{path}: not valid JSON ({err})") from None
        edits = [spec.get("containerEdits") or {}] + [d.get("containerEdits") or {} for d in spec.get("devices", [])]
        hooks = [h for e in edits for h in e.get("hooks") or []]
        return len(hooks), sum(1 for h in hooks if not h.get("env"))
    # YAML as nvidia-ctk writes it: "- hookName: ..." items whose deeper-indented lines hold their keys.
    lines, total, bare = text.splitlines(), 0, 0
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)- hookName:", line)
        if not m:
            continue
        total += 1
        indent, has_env = len(m[1]), False
        for following in lines[i + 1:]:
            depth = len(following) - len(following.lstrip())
            if following.strip() and (depth <= indent):
                break
            has_env |= bool(re.match(r"^\s*env:\s*(\[.+\])?\s*$", following)) and following.strip() != "env: []"
        bare += not has_env
    return total, bare


def engine_defaults(root: Path) -> list[tuple[Path, str]]:
    """(file, default runtime name) for each containerd, CRI-O or Docker file that names a default runtime."""
    found = []
    for pattern in ENGINE_FILES:
        for path in sorted(root.glob(pattern)):
            if not path.is_file():
                continue
            if path.name == "daemon.json":
                try:
                    data = json.loads(path.read_text(encoding="utf-8"))
                except (OSError, UnicodeDecodeError) as err:
                    raise Unreadable(f"{path}: cannot read it ({err})") from None
                except json.JSONDecodeError as err:
                    raise Unreadable(f"{path}: not valid JSON ({err})") from None
            else:
                data = read_toml(path)
            for key, value in walk(data):
                if key in ("default_runtime_name", "default_runtime", "default-runtime") and isinstance(value, str):
                    found.append((path, value))
    return found


def walk(node):
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


class Node:
    """Everything the checks read, read once; each value is a result or the Unreadable that stopped it."""

    def __init__(self, args):
        self.root = Path(args.root)

        def attempt(read, *a):
            try:
                return read(*a)
            except Unreadable as err:
                return err
        self.driver = attempt(driver_version) if "driver" in args.checks else None
        self.toolkit = attempt(toolkit_version, self.root, args.ctk)
        self.config = attempt(toolkit_config, self.root, args.config)
        self.specs = attempt(cdi_specs, self.root)

    def modes(self) -> tuple[set, list[str]]:
        """The runtime modes containers on this node can get, and why; both when the node cannot tell."""
        why, modes = [], set()
        if isinstance(self.config, Unreadable):
            return set(MODES), ["runtime mode unknown (no readable toolkit configuration): every mode counts"]
        path, cfg = self.config
        mode = (cfg.get("nvidia-container-runtime") or {}).get("mode", "auto")
        if mode == "auto":
            if isinstance(self.toolkit, Unreadable):
                return set(MODES), ["mode = auto with an unknown toolkit version: every mode counts"]
            resolved = "cdi" if version(self.toolkit[0]) >= (1, 18, 0, math.inf) else "legacy"
            modes.add(resolved)
            why.append(f"mode = auto: {'just-in-time CDI' if resolved == 'cdi' else 'legacy'} with toolkit"
                       f" {self.toolkit[0]} (auto means legacy before 1.18.0)")
        elif mode in ("cdi", "jit-cdi", "csv"):
            modes.add("cdi")
            why.append(f"mode = {mode}: CDI")
        elif mode == "legacy":
            modes.add("legacy")
            why.append("mode = legacy")
        else:
            raise Unreadable(f"{path}: nvidia-container-runtime.mode = {mode!r} is not one of auto, legacy, cdi,"
                             " jit-cdi, csv")
        if isinstance(self.specs, Unreadable):
            modes.add("cdi")
            why.append("CDI spec directories unreadable: CDI counts")
        elif any(kind and kind.startswith("nvidia.com/") for _, kind, _ in self.specs) and "cdi" not in modes:
            modes.add("cdi")
            why.append("NVIDIA CDI specs exist: a container that names a CDI device, or a CDI-enabled engine, uses CDI")
        return modes, why


# ---- the checks --------------------------------------------------------------------------------------------------
def check_driver(node, adv):
    if isinstance(node.driver, Unreadable):
        return UNKNOWN, [str(node.driver)]
    found, source = node.driver
    try:
        have = version(found)
    except Unreadable as err:
        return UNKNOWN, [f"driver version from {source}: {err}"]
    branch = f"R{have[0]}"
    lines, findings, unfixed = [f"driver {found} ({source}), branch {branch}"], [], []
    newest = max(adv["driver"], key=lambda b: b["published"])
    if have[0] > max(int(b[1:]) for b in newest["fixed"]):
        return UNKNOWN, lines + [f"branch {branch} is newer than every branch in bulletin {newest['bulletin']}, the"
                                 f" newest this table knows (checked {adv['checked']}): compare it with NVIDIA's"
                                 " bulletins since then"]
    listed_before = False  # the branch was in an earlier bulletin, so it existed when a later one left it out
    for bulletin in sorted(adv["driver"], key=lambda b: b["published"]):
        fixed = bulletin["fixed"].get(branch)
        if fixed is None:
            if listed_before or have[0] < max(int(b[1:]) for b in bulletin["fixed"]):
                unfixed.append(bulletin)
            continue  # a branch newer than all the bulletin lists and not seen before: released after it
        listed_before = True
        if have < version(fixed):
            findings.append((severity(bulletin["cvss"]), f"bulletin {bulletin['bulletin']} ({bulletin['title']},"
                             f" {dated(bulletin)}, CVSS up to {bulletin['cvss']}): fixed in {fixed}"))
    if unfixed:
        last = unfixed[-1]
        branches = ", ".join(f"{b} >= {v}" for b, v in last["fixed"].items())
        findings.append((WARN, f"branch {branch} is not in bulletin(s) {', '.join(str(b['bulletin']) for b in unfixed)}:"
                               f" NVIDIA published no fixed {branch} driver there, and says earlier branches 'might"
                               f" also be affected'; move to a listed branch ({branches})"))
    if not findings:
        findings.append((OK, f"no known bulletin applies to {found} (table checked {adv['checked']})"))
    verdict, found_lines = combine(findings)
    return verdict, lines + found_lines


def check_toolkit(node, adv):
    if isinstance(node.toolkit, Unreadable):
        return UNKNOWN, [str(node.toolkit)]
    found, binary = node.toolkit
    have = version(found)
    try:
        modes, why = node.modes()
    except Unreadable as err:
        modes, why = set(MODES), [f"{err}: every mode counts"]
    lines = [f"nvidia-ctk {found} ({binary}); modes {', '.join(sorted(modes))}: {'; '.join(why)}"]
    findings = []
    for row in adv["toolkit"]:
        hit = [r for r in row["ranges"] if version(r.get("from", "0.0.0")) <= have < version(r["below"])]
        if not hit:
            continue
        name = row["cve"] + (f' "{row["name"]}"' if "name" in row else "")
        cite = f"bulletin {row['bulletin']}, CVSS {row['cvss']}: {row['what']}; fixed in {row['toolkit_fixed']}"
        applies = sorted(set().union(*(r["modes"] for r in hit)) & modes)
        if applies:
            findings.append((severity(row["cvss"]), f"{name} ({cite}) applies in {'/'.join(applies)} mode"))
        else:
            findings.append((OK, f"{name}: {found} is affected only in {'/'.join(hit[0]['modes'])} mode, which"
                                 " this node does not use"))
    if not any(v != OK for v, _ in findings):
        findings.append((OK, f"no known toolkit CVE applies to {found} (table checked {adv['checked']})"))
    verdict, found_lines = combine(findings)
    return verdict, lines + found_lines


def check_settings(node, adv):
    if isinstance(node.config, Unreadable):
        return UNKNOWN, [str(node.config)]
    path, cfg = node.config
    try:
        modes, _ = node.modes()
        unprivileged = flag(cfg, "accept-nvidia-visible-devices-envvar-when-unprivileged", True, path)
        mounts = flag(cfg, "accept-nvidia-visible-devices-as-volume-mounts", False, path)
        features = cfg.get("features") or {}
        compat = flag(features, "allow-cuda-compat-libs-from-container", False, path)
        ldconfig = flag(features, "allow-ldconfig-from-container", False, path)
        no_hook = flag(features, "disable-cuda-compat-lib-hook", False, path)
    except Unreadable as err:
        return UNKNOWN, [str(err)]
    findings = []
    stated = "accept-nvidia-visible-devices-envvar-when-unprivileged" in cfg
    if unprivileged:
        findings.append((WARN, f"accept-nvidia-visible-devices-envvar-when-unprivileged = true{'' if stated else ' (the default)'}:"
                               " an unprivileged container that sets NVIDIA_VISIBLE_DEVICES=all gets every GPU;"
                               " set it to false and hand out GPUs by volume mounts or CDI"))
    else:
        findings.append((OK, "NVIDIA_VISIBLE_DEVICES is ignored in unprivileged containers"
                             + ("; device lists come as volume mounts" if mounts else "")))
    if compat:
        findings.append((CRITICAL if "legacy" in modes else WARN,
                         "features.allow-cuda-compat-libs-from-container = true: turns off the fix for CVE-2025-23359"
                         " (NVIDIA: 'will remove protection against this vulnerability and is not recommended')"))
    if ldconfig:
        findings.append((WARN, "features.allow-ldconfig-from-container = true: lets a container's ldconfig run,"
                               " undoing a default of the 1.17.3 security release"))
    if no_hook:
        findings.append((OK, "features.disable-cuda-compat-lib-hook = true (a stop-gap against CVE-2025-23266;"
                             " it does not replace the upgrade, and CDI specs made by other components keep the hook)"))
    verdict, lines = combine(findings)
    return verdict, [f"configuration {path}"] + lines


def check_runtimes(node, adv):
    try:
        defaults = engine_defaults(node.root)
    except Unreadable as err:
        return UNKNOWN, [str(err)]
    nvidia = [(p, name) for p, name in defaults if "nvidia" in name]
    if not nvidia:
        named = ", ".join(f"{name} ({p})" for p, name in defaults) or "no containerd, CRI-O or Docker file names one"
        return OK, [f"OK: the default runtime is not nvidia: {named}"]
    if isinstance(node.config, Unreadable):
        return UNKNOWN, [f"UNKNOWN: {p} makes {name!r} the default runtime, and the toolkit configuration that decides"
                         f" what that exposes is unreadable ({node.config})" for p, name in nvidia]
    unprivileged = node.config[1].get("accept-nvidia-visible-devices-envvar-when-unprivileged", True) is not False
    if not unprivileged:
        return OK, [f"OK: {p} makes {name!r} the default runtime; it ignores NVIDIA_VISIBLE_DEVICES in unprivileged"
                    " containers" for p, name in nvidia]
    return WARN, [f"WARN: {p} makes {name!r} the default runtime and the toolkit honours NVIDIA_VISIBLE_DEVICES in"
                  " unprivileged containers: any pod, GPU request or not, can ask for every GPU" for p, name in nvidia]


def check_cdi(node, adv):
    if isinstance(node.specs, Unreadable):
        return UNKNOWN, [str(node.specs)]
    nvidia = [(p, k, t) for p, k, t in node.specs if k and k.startswith("nvidia.com/")]
    if not nvidia:
        return OK, [f"OK: no NVIDIA CDI spec under {', '.join(str(node.root / d) for d in CDI_DIRS)}"]
    findings = []
    for path, kind, text in nvidia:
        try:
            hooks, bare = hooks_without_env(path, text)
        except Unreadable as err:
            findings.append((UNKNOWN, str(err)))
            continue
        if bare:
            findings.append((WARN, f"{path} ({kind}): {bare} of {hooks} hooks carry no env list: it was written by"
                                   " a toolkit older than 1.17.8 (the CVE-2025-23266 fix release, which writes one"
                                   " into every hook); regenerate it with the current nvidia-ctk cdi generate"))
        else:
            findings.append((OK, f"{path} ({kind}): {hooks} hooks, each with an env list"))
    return combine(findings)


# ---- tables for the handbook's pages ------------------------------------------------------------------------------
def dated(row: dict) -> str:
    """'2026-05-19' or, for a bulletin NVIDIA updated since, '2026-05-19, rev. 2026-05-21'."""
    return str(row["published"]) + (f", rev. {row['revised']}" if "revised" in row else "")


def link(bulletin: int) -> str:
    return f"[{bulletin}](https://nvidia.custhelp.com/app/answers/detail/a_id/{bulletin})"


def table(adv, which: str) -> str:
    if which == "toolkit":
        def short(text):  # NVIDIA's "up to and including X" as "≤ X"
            return text.replace("up to and including ", "≤ ")
        out = ["| CVE | Bulletin, date | CVSS | What | Toolkit: affected → fixed | GPU Operator | CDI mode |",
               "|---|---|---|---|---|---|---|"]
        for r in adv["toolkit"]:
            name = r["cve"] + (f" ({r['name']})" if "name" in r else "")
            date = dated(r)
            fixed = r["toolkit_fixed"] + (" *" if "note" in r else "")
            out.append(f"| {name} | {link(r['bulletin'])}, {date} | {r['cvss']} | {r['what']} | {short(r['toolkit_affected'])}"
                       f" → **{fixed}** | {short(r['operator_affected'])} → {r['operator_fixed']} | {r['cdi']} |")
        out += [""] + [f"\\* {r['cve']}: {r['note']}  " for r in adv["toolkit"] if "note" in r]
    elif which == "driver":
        branches = sorted({b for r in adv["driver"] for b in r["fixed"]}, key=lambda b: -int(b[1:]))
        out = ["| Bulletin | Date | Highest CVSS | " + " | ".join(branches) + " |", "|---" * (len(branches) + 3) + "|"]
        for r in sorted(adv["driver"], key=lambda b: b["published"], reverse=True):
            cells = [r["fixed"].get(b, "—") for b in branches]
            out.append(f"| {link(r['bulletin'])} {r['title']} | {dated(r)} | {r['cvss']} | " + " | ".join(cells) + " |")
    else:
        out = ["| CVE | Bulletin, date | CVSS | What | Affected | Fixed |", "|---|---|---|---|---|---|"]
        out += [f"| {r['cve']} | {link(r['bulletin'])}, {r['published']} | {r['cvss']} | {r['what']} | {r['affected']}"
                f" | {r['fixed']} |" for r in adv["exporter"]]
    return "\n".join(out + ["", f"Checked against NVIDIA's bulletins on {adv['checked']}."])


class Parser(argparse.ArgumentParser):
    def error(self, message):  # a usage error is UNKNOWN (3) for a monitoring plugin, never CRITICAL (2)
        print(f"{self.prog}: {message}", file=sys.stderr)
        sys.exit(UNKNOWN)


def main(argv=None) -> int:
    parser = Parser(description="GPU node security check (exit 0 OK, 1 WARN, 2 CRITICAL, 3 UNKNOWN)")
    parser.add_argument("--check", choices=CHECKS, action="append", help="run only this check (repeatable)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.add_argument("--root", default="/", help="read configuration files under this directory (default /)")
    parser.add_argument("--config", help="the toolkit's config.toml, if not in the usual places under --root")
    parser.add_argument("--ctk", help="the nvidia-ctk binary to ask for the toolkit version (default: PATH)")
    parser.add_argument("--advisories", default=str(Path(__file__).with_name("advisories.toml")),
                        help="the bulletin table (default: advisories.toml beside this program)")
    parser.add_argument("--table", choices=["toolkit", "driver", "exporter"], help="print a bulletin table as Markdown")
    args = parser.parse_args(argv)
    if not Path(args.root).is_dir():
        parser.error(f"--root {args.root}: not a directory")
    try:
        adv = load_advisories(Path(args.advisories))
    except SystemExit as err:
        print(err, file=sys.stderr)
        return UNKNOWN
    if args.table:
        print(table(adv, args.table))
        return OK
    args.checks = args.check or CHECKS
    node = Node(args)
    functions = {"driver": check_driver, "toolkit": check_toolkit, "settings": check_settings,
                 "runtimes": check_runtimes, "cdi": check_cdi}
    results = {}
    for name in args.checks:
        verdict, lines = functions[name](node, adv)
        results[name] = {"verdict": NAMES[verdict], "code": verdict, "evidence": lines}
    worst = max((r["code"] for r in results.values()), key=RANK.get)
    report = {"checks": results, "exit": worst, "advisories_checked": adv["checked"].isoformat(),
              "date": datetime.date.today().isoformat()}
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        for name, r in results.items():
            print(f"[{r['verdict']}] {name}")
            for line in r["evidence"]:
                print(f"    {line}")
        print(f"exit {worst} ({NAMES[worst]}); bulletins known up to {adv['checked']}")
    return worst


if __name__ == "__main__":
    sys.exit(main())
