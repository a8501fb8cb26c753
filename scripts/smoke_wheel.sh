#!/usr/bin/env bash
# The package as a user gets it (issue 25): build the sdist and the wheel (the wheel from the sdist, setuptools'
# deprecation warnings as errors, no build isolation: nothing is downloaded to build), install the wheel into a
# fresh virtual environment in a temporary folder outside the source tree, and run a smoke test there from another
# folder: `oblivio --help` / `--version`, oblivio.unlearn on sklearn's digits, `oblivio request` add / apply / list
# on the tiny preset. Run by `make wheel-smoke` (so by `make test` and CI).
#
#   bash scripts/smoke_wheel.sh [PYTHON]     # PYTHON: the project's venv python (default .venv/bin/python)
#
# Costs, step by step, are printed at the end (wall and CPU seconds).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PY="${1:-$ROOT/.venv/bin/python}"
WORK="$(mktemp -d "${TMPDIR:-/tmp}/oblivio-wheel.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
case "$WORK" in "$ROOT"/*) echo "smoke_wheel: the temporary folder $WORK is inside the source tree" >&2; exit 1 ;; esac

declare -a TIMES=()
# CPU milliseconds (user + system) of the finished child processes so far, from bash's `times` (run in this shell,
# not in a $(...) subshell, whose children are not these)
cpu_now() {
    times >"$WORK/.times"
    CPU_MS=$(tail -1 "$WORK/.times" | awk '{ split($1, u, /[ms]/); split($2, s, /[ms]/);
        printf "%d", (u[1] * 60 + u[2] + s[1] * 60 + s[2]) * 1000 }')
}
step() { STEP_NAME="$1"; STEP_T0=$(date +%s%N); cpu_now; STEP_C0=$CPU_MS; echo "== wheel smoke: $1"; }
done_step() {
    local ms=$((($(date +%s%N) - STEP_T0) / 1000000)) cpu
    cpu_now
    cpu=$((CPU_MS - STEP_C0))
    TIMES+=("$(printf '%-32s wall %4d.%01d s  CPU %4d.%01d s' "$STEP_NAME" $((ms / 1000)) $((ms % 1000 / 100)) \
        $((cpu / 1000)) $((cpu % 1000 / 100)))")
}

step "build sdist + wheel"
# A SetuptoolsDeprecationWarning (e.g. a deprecated pyproject table, with a date after which builds fail) is an
# error here, so the next such date is caught when it is announced, not when it passes. The filter names its builtin
# base class, UserWarning (of which every setuptools warning is one): Python reads PYTHONWARNINGS before
# site-packages is importable, so "error::setuptools.SetuptoolsDeprecationWarning" would be ignored ("Invalid -W
# option ignored"). Measured: the old `license = { text = "MIT" }` table fails this build.
PYTHONWARNINGS="error::UserWarning" \
    "$PY" -m build --no-isolation --outdir "$WORK/dist" "$ROOT" >"$WORK/build.log" 2>&1 || {
    cat "$WORK/build.log" >&2
    echo "smoke_wheel: building the sdist / wheel failed (log above)" >&2
    exit 1
}
WHEEL="$(ls "$WORK"/dist/oblivio-*.whl)"
SDIST="$(ls "$WORK"/dist/oblivio-*.tar.gz)"
VERSION="$(basename "$WHEEL" | cut -d- -f2)"
echo "built $(basename "$SDIST") and $(basename "$WHEEL")"
done_step

step "check the wheel's contents"
"$PY" - "$WHEEL" "$SDIST" "$ROOT" <<'EOF'
import sys
import tarfile
import zipfile
from email.parser import Parser
from pathlib import Path

wheel, sdist, root = sys.argv[1], sys.argv[2], Path(sys.argv[3])
names = set(zipfile.ZipFile(wheel).namelist())
# Every file of the package (code and any data it reads at run time) must be in the wheel.
src = root / "src"
package = {p.relative_to(src).as_posix() for p in (src / "oblivio").rglob("*") if p.is_file()
           and "__pycache__" not in p.parts and p.suffix != ".pyc"}
missing = sorted(package - names)
extra = sorted(n for n in names if not n.startswith(("oblivio/", "oblivio-")))
assert not missing, f"files of src/oblivio missing from the wheel: {missing}"
assert not extra, f"files outside the package in the wheel: {extra}"
dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
meta = Parser().parsestr(zipfile.ZipFile(wheel).read(f"{dist_info}/METADATA").decode())
assert meta["License-Expression"] == "MIT", f"License-Expression is {meta['License-Expression']!r}, not 'MIT'"
assert f"{dist_info}/licenses/LICENSE" in names, "the LICENSE file is not in the wheel"
members = tarfile.open(sdist).getnames()
for needed in ("LICENSE", "README.md", "pyproject.toml", "CHANGELOG.md"):
    assert any(m.endswith("/" + needed) and m.count("/") == 1 for m in members), f"{needed} missing from the sdist"
print(f"wheel: {len(package)} package files, License-Expression MIT, LICENSE included; sdist complete")
EOF
done_step

step "fresh venv + install the wheel"
"$PY" -m venv "$WORK/venv"
VPY="$WORK/venv/bin/python"
# The CPU build of PyTorch first, as the Makefile does (an unpinned torch would pull several GB of CUDA packages).
"$VPY" -m pip install -q torch==2.13.0
"$VPY" -m pip install -q "$WHEEL"
done_step

step "smoke test outside the tree"
mkdir -p "$WORK/run"
cd "$WORK/run"
# Nothing from the source tree or the project's venv may leak in; the store and ledger live in the temp folder.
unset PYTHONPATH
export OBLIVIO_STORE="$WORK/store" OBLIVIO_HOME="$WORK/home" OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
OBLIVIO="$WORK/venv/bin/oblivio"
"$OBLIVIO" --help >/dev/null
test "$("$OBLIVIO" --version)" = "oblivio $VERSION" || {
    echo "smoke_wheel: 'oblivio --version' says '$("$OBLIVIO" --version)', the wheel is $VERSION" >&2
    exit 1
}
"$VPY" - "$WORK" <<'EOF'
import sys
from pathlib import Path

import torch
from sklearn.datasets import load_digits

import oblivio

here = Path(oblivio.__file__).resolve()
assert Path(sys.argv[1]).resolve() / "venv" in here.parents, f"oblivio imported from {here}, not the fresh venv"
x, y = load_digits(return_X_y=True)
x = torch.tensor(x / 16.0, dtype=torch.float32).reshape(-1, 1, 8, 8)
y = torch.tensor(y)
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
opt = torch.optim.SGD(net.parameters(), lr=0.5)
for _ in range(100):
    opt.zero_grad()
    torch.nn.functional.cross_entropy(net(x[:1400]), y[:1400]).backward()
    opt.step()
new, report = oblivio.unlearn(
    net, forget=(x[:40], y[:40]), retain=(x[40:1400], y[40:1400]), test=(x[1400:], y[1400:]),
    method="finetune", epochs=1, progress=False,
)
assert new is not net and isinstance(new, torch.nn.Module)
assert any(not torch.equal(a, b) for a, b in zip(new.parameters(), net.parameters(), strict=True)), "no change"
print(report)
EOF
"$OBLIVIO" request add --preset tiny --workdir ledger --ids 3,7,12 --requester ci --no-progress
# fine-tune for one epoch: a run that surely changes the weights, so that a new model file is written
"$OBLIVIO" request apply --preset tiny --workdir ledger --method finetune --hparams '{"epochs": 1}' --no-progress
"$OBLIVIO" request list --preset tiny --workdir ledger | tee list.txt
grep -Eq '^1 +applied' list.txt || { echo "smoke_wheel: request 1 is not applied" >&2; exit 1; }
ls ledger/models/run*.pt >/dev/null  # the run's model file
done_step

echo "== wheel smoke passed ($(basename "$WHEEL")); per step (CPU: user + system of its processes):"
printf '   %s\n' "${TIMES[@]}"
