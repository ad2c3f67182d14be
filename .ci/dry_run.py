"""A local dry run of a GitHub Actions workflow, executed the way GitHub's ubuntu runner would.

Run through .ci/dry-run (as root: it creates the `runner` user). For each chosen job (and each
chosen leg of its matrix) it starts from a fresh clone of the repository's committed HEAD in
/home/runner/work/REPO/REPO, a HOME reset to what the runner image holds (the Rust toolchain),
and runs the steps in order as user `runner` (passwordless sudo, HOME=/home/runner) with
GitHub's environment (GITHUB_WORKSPACE, RUNNER_TEMP, GITHUB_ENV, GITHUB_PATH, GITHUB_OUTPUT,
GITHUB_STEP_SUMMARY, CI, ...), `${{ }}` expressions evaluated (matrix, runner, github, env,
steps, needs, hashFiles, success/failure/always/cancelled), `if:` and job `needs:` semantics
and the job and step timeouts. `uses:` steps are emulated: checkout is the fresh clone;
actions/cache restores from and saves to a store of this dry run (as runner, so a file runner
cannot read fails the save here, where GitHub would only warn and never cache);
upload-artifact checks that its paths exist and are readable by runner (a missing path fails
unless if-no-files-found is ignore) and keeps them for download-artifact. Anything else it
cannot emulate is an error, never silently skipped.
"""

import argparse
import fcntl
import fnmatch
import glob
import grp
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import yaml

RUNNER = "runner"
HOME = "/home/runner"
# What ubuntu-latest puts on a step's PATH (its Rust toolchain first).
BASE_PATH = f"{HOME}/.cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Parts of HOME that belong to the runner image and survive between jobs; everything else in
# HOME is removed before each job, as on a fresh GitHub runner.
IMAGE_KEEP = {".rustup", ".cargo/bin", ".cargo/env", ".profile", ".bashrc", ".bash_logout"}
STORE = "/var/cache/netpath-dry-run"


class Failed(Exception):
    """A step or check that failed: the job fails with this text."""


def say(msg):
    print(f"dry-run: {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Expressions: the subset of GitHub's expression language a workflow uses.

TOKEN = re.compile(
    r"\s*(?:(?P<num>\d+(?:\.\d+)?)|(?P<str>'(?:[^']|'')*')|(?P<op>==|!=|&&|\|\||<=|>=|[!<>(),.\[\]*])"
    r"|(?P<name>[A-Za-z_][A-Za-z0-9_-]*))"
)


def tokens(text):
    pos, out = 0, []
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise Failed(f"expression `{text}`: cannot read it at `{text[pos:]}`")
        pos = m.end()
        kind = m.lastgroup
        out.append((kind, m.group(kind)))
    return out


class Expr:
    """Evaluates one expression against contexts and functions."""

    def __init__(self, text, contexts, functions):
        self.text, self.toks, self.i = text, tokens(text), 0
        self.contexts, self.functions = contexts, functions

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, value=None):
        tok = self.peek()
        if value is not None and tok[1] != value:
            raise Failed(f"expression `{self.text}`: expected `{value}`, found `{tok[1]}`")
        self.i += 1
        return tok

    def run(self):
        v = self.or_()
        if self.i != len(self.toks):
            raise Failed(f"expression `{self.text}`: unexpected `{self.peek()[1]}`")
        return v

    def or_(self):
        v = self.and_()
        while self.peek()[1] == "||":
            self.take()
            w = self.and_()
            v = v if truthy(v) else w
        return v

    def and_(self):
        v = self.cmp()
        while self.peek()[1] == "&&":
            self.take()
            w = self.cmp()
            v = w if truthy(v) else v
        return v

    def cmp(self):
        v = self.unary()
        while self.peek()[1] in ("==", "!="):
            op = self.take()[1]
            w = self.unary()
            eq = str(v).lower() == str(w).lower() if isinstance(v, str) or isinstance(w, str) else v == w
            v = eq if op == "==" else not eq
        return v

    def unary(self):
        if self.peek()[1] == "!":
            self.take()
            return not truthy(self.unary())
        return self.primary()

    def primary(self):
        kind, value = self.take()
        if kind == "num":
            return float(value)
        if kind == "str":
            return value[1:-1].replace("''", "'")
        if value == "(":
            v = self.or_()
            self.take(")")
            return v
        if kind != "name":
            raise Failed(f"expression `{self.text}`: unexpected `{value}`")
        if value in ("true", "false"):
            return value == "true"
        if value == "null":
            return None
        if self.peek()[1] == "(":
            self.take()
            args = []
            while self.peek()[1] != ")":
                args.append(self.or_())
                if self.peek()[1] == ",":
                    self.take()
            self.take(")")
            fn = self.functions.get(value)
            if fn is None:
                raise Failed(f"expression `{self.text}`: function {value}() is not emulated")
            return fn(*args)
        if value not in self.contexts:
            raise Failed(f"expression `{self.text}`: no context `{value}` here")
        v, path = self.contexts[value], value
        while self.peek()[1] in (".", "["):
            if self.take()[1] == ".":
                key = self.take()[1]
            else:
                key = self.or_()
                self.take("]")
            path += f".{key}"
            if not isinstance(v, dict) or key not in v:
                # GitHub gives '' for a missing property; a typo would pass silently, so say it.
                say(f"warning: `{path}` is not set (empty string)")
                v = ""
            else:
                v = v[key]
        return v


def truthy(v):
    return v not in (None, False, 0, 0.0, "")


def as_text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    if isinstance(v, (dict, list)):
        return json.dumps(v)
    return "" if v is None else str(v)


def interpolate(text, ctx, functions):
    if not isinstance(text, str):
        return text
    return re.sub(r"\$\{\{(.*?)\}\}", lambda m: as_text(Expr(m.group(1), ctx, functions).run()), text)


def condition(text, ctx, functions):
    if text is None:
        text = "success()"
    if isinstance(text, bool):
        return text
    text = str(text).strip()
    m = re.fullmatch(r"\$\{\{(.*)\}\}", text, re.S)
    return truthy(Expr(m.group(1) if m else text, ctx, functions).run())


# ---------------------------------------------------------------------------------------------
# The machine: the runner user, its HOME, the workspace.


def as_runner():
    pw = pwd.getpwnam(RUNNER)
    groups = [g.gr_gid for g in grp.getgrall() if RUNNER in g.gr_mem]
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": groups}


def sh(args, **kw):
    return subprocess.run(args, check=True, **kw)


def inside_a_runner():
    """The name of an ancestor that is a workflow runner (GitHub's or a dry run), or None: a dry
    run there would reset the very HOME the job runs in, and wait for its own lock."""
    pid = os.getppid()
    while pid > 1:
        try:
            cmd = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            return None
        if "Runner.Worker" in cmd or "dry_run.py" in cmd:
            return cmd.strip()[:120]
        pid = int(stat.rsplit(")", 1)[1].split()[1])
    return None


def setup_machine():
    outer = inside_a_runner()
    if outer:
        raise SystemExit(f"dry-run: refusing to run inside a workflow runner ({outer}): it would reset its HOME")
    if os.geteuid() != 0:
        raise SystemExit("dry-run: run as root (it creates the runner user and resets its HOME)")
    if shutil.which("sudo") is None:
        say("installing sudo (the runner image has it)")
        sh(["apt-get", "-o", "DPkg::Lock::Timeout=600", "install", "-y", "-qq", "--no-install-recommends",
            "--no-remove", "sudo"],
           env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    try:
        pwd.getpwnam(RUNNER)
    except KeyError:
        say("creating user runner with passwordless sudo, HOME=/home/runner")
        sh(["useradd", "--create-home", "--home-dir", HOME, "--shell", "/bin/bash", RUNNER])
    with open("/etc/sudoers.d/runner", "w") as f:
        f.write(f"{RUNNER} ALL=(ALL) NOPASSWD:ALL\nDefaults:{RUNNER} !requiretty\n")
    os.chmod("/etc/sudoers.d/runner", 0o440)
    os.makedirs(STORE, exist_ok=True)


def reset_home():
    """HOME as a fresh runner has it: only the image's parts stay."""
    for root, dirs, files in os.walk(HOME, topdown=True):
        rel_root = os.path.relpath(root, HOME)
        for name in list(dirs) + files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if rel in IMAGE_KEEP:
                if name in dirs:
                    dirs.remove(name)
                continue
            if any(k.startswith(rel + "/") for k in IMAGE_KEEP):
                continue  # a parent of something kept: walk into it
            path = os.path.join(root, name)
            if os.path.isdir(path) and not os.path.islink(path):
                shutil.rmtree(path)
                dirs.remove(name)
            else:
                os.unlink(path)
    # Like the image, HOME is the runner's own; a root-owned leftover would be a dry-run artefact.
    sh(["chown", "-R", f"{RUNNER}:{RUNNER}", HOME])


# ---------------------------------------------------------------------------------------------
# One job.


class Job:
    def __init__(self, run, job_id, spec, matrix, needs):
        self.run_, self.id, self.spec, self.matrix, self.needs = run, job_id, spec, matrix, needs
        label = ", ".join(f"{k}={v}" for k, v in matrix.items())
        self.name = f"{job_id} ({label})" if label else job_id
        self.status = "success"
        self.steps_ctx = {}
        self.env = {}
        self.path_extra = []
        self.posts = []
        self.summary = ""

    def contexts(self):
        r = self.run_
        return {
            "github": {
                "workspace": r.workspace, "sha": r.sha, "ref": "refs/heads/" + r.branch,
                "ref_name": r.branch, "repository": f"local/{r.name}", "event_name": "push",
                "job": self.id, "run_id": r.run_id, "actor": RUNNER, "server_url": "https://github.com",
            },
            "runner": {"os": "Linux", "arch": "X64", "temp": r.temp, "tool_cache": "/opt/hostedtoolcache",
                       "name": "dry-run", "workspace": os.path.dirname(r.workspace)},
            "matrix": self.matrix,
            "env": {**r.workflow_env, **self.job_env, **self.env},
            "steps": self.steps_ctx,
            "needs": self.needs,
            "job": {"status": self.status},
            "strategy": {"fail-fast": False},
            "secrets": {},
            "vars": {},
        }

    def functions(self):
        return {
            "success": lambda: self.status == "success",
            "failure": lambda: self.status == "failure",
            "always": lambda: True,
            "cancelled": lambda: False,
            "hashFiles": self.hash_files,
            "contains": lambda a, b: (b in a) if isinstance(a, (list, str)) else False,
            "startsWith": lambda a, b: str(a).lower().startswith(str(b).lower()),
            "endsWith": lambda a, b: str(a).lower().endswith(str(b).lower()),
            "format": lambda f, *a: re.sub(r"\{(\d+)\}", lambda m: as_text(a[int(m.group(1))]), f),
            "toJSON": json.dumps,
            "fromJSON": json.loads,
        }

    def hash_files(self, *patterns):
        h, found = hashlib.sha256(), False
        for p in patterns:
            for f in sorted(glob.glob(os.path.join(self.run_.workspace, p), recursive=True)):
                if os.path.isfile(f):
                    found = True
                    with open(f, "rb") as fh:
                        h.update(hashlib.sha256(fh.read()).digest())
        return h.hexdigest() if found else ""

    def ev(self, text):
        return interpolate(text, self.contexts(), self.functions())

    def step_env(self, step):
        r = self.run_
        env = {
            "HOME": HOME, "USER": RUNNER, "LOGNAME": RUNNER, "SHELL": "/bin/bash", "LANG": "C.UTF-8",
            "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_WORKSPACE": r.workspace,
            "GITHUB_SHA": r.sha, "GITHUB_REF": "refs/heads/" + r.branch, "GITHUB_REF_NAME": r.branch,
            "GITHUB_REPOSITORY": f"local/{r.name}", "GITHUB_JOB": self.id, "GITHUB_RUN_ID": r.run_id,
            "GITHUB_EVENT_NAME": "push", "GITHUB_ACTOR": RUNNER, "RUNNER_OS": "Linux", "RUNNER_ARCH": "X64",
            "RUNNER_TEMP": r.temp, "RUNNER_TOOL_CACHE": "/opt/hostedtoolcache",
            "PATH": ":".join(self.path_extra[::-1] + [BASE_PATH]),
        }
        for scope in (r.workflow_env, self.job_env, self.env):
            env.update({k: as_text(v) for k, v in scope.items()})
        for k, v in (step.get("env") or {}).items():
            env[k] = as_text(self.ev(v))
        return env

    def execute(self):
        r = self.run_
        say(f"=== job {self.name}")
        if not str(self.spec.get("runs-on", "")).startswith("ubuntu"):
            raise Failed(f"job {self.id}: runs-on {self.spec.get('runs-on')} is not emulated (ubuntu-* only)")
        reset_home()
        for d in (r.temp,):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            os.chown(d, pwd.getpwnam(RUNNER).pw_uid, pwd.getpwnam(RUNNER).pw_gid)
        shutil.rmtree(r.workspace, ignore_errors=True)
        os.makedirs(r.workspace)
        sh(["chown", "-R", f"{RUNNER}:{RUNNER}", os.path.dirname(os.path.dirname(r.workspace))])
        self.job_env = {}
        self.job_env = {k: self.ev(v) for k, v in (self.spec.get("env") or {}).items()}
        deadline = time.monotonic() + 60 * float(self.spec.get("timeout-minutes", 360))
        start = time.monotonic()
        for n, step in enumerate(self.spec.get("steps") or [], 1):
            name = self.ev(step.get("name") or step.get("uses") or step.get("run", "").split("\n")[0])
            try:
                run_it = condition(step.get("if"), self.contexts(), self.functions())
            except Failed as e:
                run_it, self.status = False, "failure"
                say(f"step {n} `{name}`: {e}")
            if not run_it:
                say(f"--- step {n} `{name}`: skipped (if: {step.get('if', 'success()')})")
                continue
            say(f"--- step {n} `{name}`")
            t0 = time.monotonic()
            try:
                if "uses" in step:
                    self.uses(step)
                else:
                    limit = 60 * float(step.get("timeout-minutes", 360))
                    self.run_step(step, min(deadline, time.monotonic() + limit))
                say(f"step {n} `{name}`: ok in {time.monotonic() - t0:.0f} s")
            except Failed as e:
                say(f"step {n} `{name}`: FAILED in {time.monotonic() - t0:.0f} s: {e}")
                if not step.get("continue-on-error"):
                    self.status = "failure"
        for post in self.posts:
            try:
                post()
            except Failed as e:
                say(f"post step: FAILED: {e}")
                self.status = "failure"
        if self.summary.strip():
            path = os.path.join(r.out, f"summary-{re.sub(r'[^A-Za-z0-9_.-]+', '_', self.name)}.md")
            with open(path, "w") as f:
                f.write(self.summary)
            say(f"job summary in {path}")
        say(f"=== job {self.name}: {self.status} in {time.monotonic() - start:.0f} s")
        return self.status

    def run_step(self, step, deadline):
        r = self.run_
        files = {}
        for key in ("GITHUB_ENV", "GITHUB_PATH", "GITHUB_OUTPUT", "GITHUB_STEP_SUMMARY"):
            fd, files[key] = tempfile.mkstemp(prefix=key.lower() + "-", dir=r.temp)
            os.close(fd)
            os.chown(files[key], pwd.getpwnam(RUNNER).pw_uid, pwd.getpwnam(RUNNER).pw_gid)
        script = self.ev(step["run"])
        fd, path = tempfile.mkstemp(prefix="step-", suffix=".sh", dir=r.temp)
        with os.fdopen(fd, "w") as f:
            f.write(script)
        os.chmod(path, 0o755)
        shell = step.get("shell") or (self.spec.get("defaults") or {}).get("run", {}).get("shell")
        if shell in (None, ""):
            argv = ["bash", "-e", path]
        elif shell == "bash":
            argv = ["bash", "--noprofile", "--norc", "-eo", "pipefail", path]
        elif shell == "sh":
            argv = ["sh", "-e", path]
        else:
            raise Failed(f"shell {shell} is not emulated")
        env = {**self.step_env(step), **files}
        cwd = os.path.join(r.workspace, self.ev(step.get("working-directory", "")))
        proc = subprocess.Popen(argv, cwd=cwd, env=env, start_new_session=True, **as_runner())
        try:
            code = proc.wait(timeout=max(1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            raise Failed("timed out (the job's or the step's timeout-minutes)")
        finally:
            os.unlink(path)
        self.read_files(step, files)
        if code != 0:
            raise Failed(f"exit code {code}")

    def read_files(self, step, files):
        def entries(path):
            text = open(path).read()
            lines, out, i = text.split("\n"), {}, 0
            while i < len(lines):
                line = lines[i]
                m = re.match(r"^([^=<]+)<<(.+)$", line)
                if m:
                    key, end, i, val = m.group(1), m.group(2), i + 1, []
                    while i < len(lines) and lines[i] != end:
                        val.append(lines[i])
                        i += 1
                    out[key] = "\n".join(val)
                elif "=" in line:
                    k, v = line.split("=", 1)
                    out[k] = v
                i += 1
            return out

        self.env.update(entries(files["GITHUB_ENV"]))
        self.path_extra += [p for p in open(files["GITHUB_PATH"]).read().split("\n") if p]
        if step.get("id"):
            self.steps_ctx[step["id"]] = {"outputs": entries(files["GITHUB_OUTPUT"]), "outcome": "success"}
        self.summary += open(files["GITHUB_STEP_SUMMARY"]).read()
        for f in files.values():
            os.unlink(f)

    # -- uses: ---------------------------------------------------------------------------------

    def uses(self, step):
        action = step["uses"].split("@")[0]
        with_ = {k: self.ev(v) for k, v in (step.get("with") or {}).items()}
        handler = {
            "actions/checkout": self.checkout,
            "actions/cache": self.cache,
            "actions/upload-artifact": self.upload,
            "actions/download-artifact": self.download,
        }.get(action)
        if handler is None:
            raise Failed(f"uses: {step['uses']} is not emulated by the dry run")
        handler(with_)

    def checkout(self, with_):
        unknown = set(with_) - {"fetch-depth"}
        if unknown:
            raise Failed(f"actions/checkout with {sorted(unknown)} is not emulated")
        r = self.run_
        shutil.rmtree(r.workspace)
        sh(["git", "clone", "-q", "--no-local", r.repo, r.workspace])
        sh(["git", "-C", r.workspace, "checkout", "-q", "-B", r.branch, r.sha])
        sh(["chown", "-R", f"{RUNNER}:{RUNNER}", r.workspace])

    def cache(self, with_):
        paths = [p.replace("~", HOME, 1) if p.startswith("~") else p for p in
                 (x.strip() for x in str(with_.get("path", "")).split("\n")) if p]
        key = with_.get("key", "")
        if not paths or not key:
            raise Failed("actions/cache needs path and key")
        if len(key) > 512 or "," in key:
            raise Failed(f"actions/cache key `{key}`: longer than 512 characters or has a comma")
        safe = lambda k: re.sub(r"[^A-Za-z0-9_.+-]", "_", k)  # noqa: E731
        restore = [key] + [k.strip() for k in str(with_.get("restore-keys", "")).split("\n") if k.strip()]
        hit, exact = None, False
        for i, k in enumerate(restore):
            cands = sorted((f for f in os.listdir(STORE) if f.startswith(safe(k)) and f.endswith(".tar")),
                           key=lambda f: os.path.getmtime(os.path.join(STORE, f)), reverse=True)
            exact_name = safe(k) + ".tar"
            if i == 0:
                cands = [c for c in cands if c == exact_name]
            if cands:
                hit, exact = os.path.join(STORE, cands[0]), i == 0
                break
        if hit:
            say(f"cache: restoring {os.path.basename(hit)} ({'exact' if exact else 'restore-keys'} match)")
            subprocess.run(["tar", "-xf", hit, "-P"], cwd=self.run_.workspace, check=True, **as_runner())
        else:
            say(f"cache: no entry for {key}")
        if exact:
            return

        def save():
            if self.status != "success":
                say(f"cache: not saving {key} (the job failed; actions/cache saves on success only)")
                return
            ws = self.run_.workspace
            present = [p for p in paths if glob.glob(os.path.join(ws, p))]
            if not present:
                raise Failed(f"actions/cache: none of {paths} exists at the end of the job: nothing would be cached")
            target = os.path.join(STORE, safe(key) + ".tar")
            tmp = target + ".part"
            # Read as runner, as the action does (an unreadable file fails the save); written into
            # the store, which is the dry run's own, by root.
            with open(tmp, "wb") as archive:
                res = subprocess.run(["tar", "-cf", "-", "-P"] + present, cwd=ws, stdout=archive,
                                     stderr=subprocess.PIPE, text=True, **as_runner())
            if res.returncode != 0:
                os.unlink(tmp)
                err = res.stderr.strip().splitlines()[-3:]
                raise Failed(f"actions/cache would fail to save {key} as runner: {' | '.join(err)}")
            os.replace(tmp, target)
            say(f"cache: saved {key} ({os.path.getsize(target) // (1 << 20)} MiB)")

        self.posts.insert(0, save)

    def upload(self, with_):
        r = self.run_
        name = with_.get("name", "artifact")
        if name in r.artifacts_named:
            raise Failed(f"upload-artifact: an artifact named {name} was already uploaded in this run (409 on GitHub)")
        mode = with_.get("if-no-files-found", "warn")
        include, exclude = [], []
        for p in str(with_.get("path", "")).split("\n"):
            p = p.strip()
            if not p:
                continue
            (exclude if p.startswith("!") else include).append(p.lstrip("!"))
        files, missing = [], []
        for p in include:
            full = p if os.path.isabs(p) else os.path.join(r.workspace, p)
            hits = glob.glob(full, recursive=True)
            if not hits:
                missing.append(p)
            for h in hits:
                if os.path.isdir(h):
                    files += [os.path.join(d, f) for d, _, fs in os.walk(h) for f in fs]
                else:
                    files.append(h)
        files = [f for f in files if not any(fnmatch.fnmatch(f, os.path.join(r.workspace, e)) for e in exclude)]
        if missing:
            msg = f"upload-artifact {name}: no files at {', '.join(missing)}"
            if mode == "error" or (mode == "warn" and not files):
                raise Failed(msg)
            say(f"warning: {msg}")
        if not files:
            return
        root = os.path.commonpath([os.path.dirname(f) if not os.path.isdir(f) else f for f in files])
        if len(include) == 1 and os.path.isdir(os.path.join(r.workspace, include[0])):
            root = os.path.normpath(os.path.join(r.workspace, include[0]))
        dest = os.path.join(r.out, "artifacts", name)
        unreadable = [f for f in files
                      if subprocess.run(["test", "-r", f], **as_runner()).returncode != 0]
        if unreadable:
            raise Failed(f"upload-artifact {name}: runner cannot read {', '.join(unreadable[:5])}")
        for f in files:
            to = os.path.join(dest, os.path.relpath(f, root))
            os.makedirs(os.path.dirname(to), exist_ok=True)
            shutil.copy2(f, to)
        r.artifacts_named.add(name)
        say(f"upload-artifact {name}: {len(files)} files")

    def download(self, with_):
        r = self.run_
        store = os.path.join(r.out, "artifacts")
        names = sorted(os.listdir(store)) if os.path.isdir(store) else []
        if "name" in with_:
            names = [n for n in names if n == with_["name"]]
            if not names:
                raise Failed(f"download-artifact: no artifact {with_['name']}")
        elif "pattern" in with_:
            names = [n for n in names if fnmatch.fnmatch(n, with_["pattern"])]
        dest = os.path.join(r.workspace, with_.get("path", "."))
        merge = str(with_.get("merge-multiple", "false")).lower() == "true"
        for n in names:
            to = dest if merge or "name" in with_ else os.path.join(dest, n)
            shutil.copytree(os.path.join(store, n), to, dirs_exist_ok=True)
        sh(["chown", "-R", f"{RUNNER}:{RUNNER}", r.workspace])
        say(f"download-artifact: {len(names)} artifact(s): {', '.join(names) or 'none'}")


# ---------------------------------------------------------------------------------------------
# The run: jobs in the order of their needs, matrix legs expanded.


class Run:
    def __init__(self, args):
        self.repo = os.path.abspath(args.repo)
        self.sha = subprocess.run(["git", "-C", self.repo, "rev-parse", "HEAD"], capture_output=True, text=True,
                                  check=True).stdout.strip()
        self.branch = "dry-run"
        self.name = os.path.basename(self.repo.rstrip("/"))
        self.workspace = f"{HOME}/work/{self.name}/{self.name}"
        self.temp = f"{HOME}/work/_temp"
        self.run_id = str(int(time.time()))
        self.out = os.path.abspath(args.out)
        if not args.keep_artifacts:
            shutil.rmtree(self.out, ignore_errors=True)
        os.makedirs(self.out, exist_ok=True)
        with open(args.workflow) as f:
            self.wf = yaml.safe_load(f)
        self.workflow_env = dict(self.wf.get("env") or {})
        store = os.path.join(self.out, "artifacts")
        self.artifacts_named = set(os.listdir(store)) if os.path.isdir(store) else set()


def legs(spec, chosen):
    """The matrix legs of a job: the cartesian product of its lists, includes and excludes,
    limited to those matching every KEY=VALUE of `chosen`."""
    m = (spec.get("strategy") or {}).get("matrix")
    if not m:
        return [{}]
    if isinstance(m, str):
        raise Failed("a matrix from an expression is not emulated")
    combos = [{}]
    for k, values in m.items():
        if k in ("include", "exclude"):
            continue
        combos = [{**c, k: v} for c in combos for v in values]
    for ex in m.get("exclude") or []:
        combos = [c for c in combos if not all(str(c.get(k)) == str(v) for k, v in ex.items())]
    combos += list(m.get("include") or [])
    return [c for c in combos if all(str(c.get(k)) == v for k, v in chosen.items() if k in c)]


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--workflow", default=".github/workflows/ci.yml")
    p.add_argument("--repo", default=".", help="the repository to clone (its committed HEAD)")
    p.add_argument("--job", action="append", required=True, help="a job to run (repeat; in the given order)")
    p.add_argument("--matrix", action="append", default=[], help="KEY=VALUE: only the legs with it")
    p.add_argument("--out", default="target/dry-run", help="job summaries and artifacts")
    p.add_argument("--keep-artifacts", action="store_true",
                   help="keep what an earlier dry run uploaded to --out (to run a later job, such as the join, alone)")
    args = p.parse_args()
    chosen = dict(kv.split("=", 1) for kv in args.matrix)
    # Dry runs started at once (vm/tests/dry_run.rs runs three) set the machine up one at a
    # time: on a machine without sudo or the runner user, each would install and create them.
    with open("/run/netpath-dry-run-setup.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        setup_machine()
    # One dry run at a time: each resets runner's HOME and workspace.
    lock = open(os.path.join(STORE, "lock"), "w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    run = Run(args)
    jobs = run.wf.get("jobs") or {}
    say(f"workflow {args.workflow}, commit {run.sha[:12]} of {run.repo}, jobs {', '.join(args.job)}")
    results, status = {}, 0
    for job_id in args.job:
        if job_id not in jobs:
            raise SystemExit(f"dry-run: no job `{job_id}` in {args.workflow} (it has {', '.join(jobs)})")
        spec = jobs[job_id]
        needs_ids = spec.get("needs") or []
        needs_ids = [needs_ids] if isinstance(needs_ids, str) else needs_ids
        needs = {n: {"result": results.get(n, "skipped"), "outputs": {}} for n in needs_ids}
        leg_results = []
        for m in legs(spec, chosen):
            job = Job(run, job_id, spec, m, needs)
            job.job_env = {}
            ok_needs = all(v["result"] == "success" for v in needs.values())
            job.status = "success" if ok_needs else "failure"
            try:
                go = condition(spec.get("if"), job.contexts(), job.functions())
            except Failed as e:
                say(f"job {job.name}: {e}")
                go = False
            if not go:
                say(f"=== job {job.name}: skipped (if: {spec.get('if', 'success()')})")
                leg_results.append("skipped")
                continue
            job.status = "success"
            try:
                leg_results.append(job.execute())
            except Failed as e:
                say(f"=== job {job.name}: FAILED: {e}")
                leg_results.append("failure")
        results[job_id] = "failure" if "failure" in leg_results else ("success" if leg_results else "skipped")
        if not leg_results:
            say(f"job {job_id}: no matrix leg matches {args.matrix}")
            status = 1
        if results[job_id] == "failure":
            status = 1
    say("result: " + ", ".join(f"{j} {r}" for j, r in results.items()))
    return status


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Failed as e:
        say(f"FAILED: {e}")
        sys.exit(1)
