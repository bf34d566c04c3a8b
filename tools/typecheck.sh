#!/usr/bin/env bash
# Type-checks the trainspec package with mypy (settings: [tool.mypy] in pyproject.toml).
#
# The repository's folders are mapped onto packages by setuptools (cli/ is `trainspec`,
# compiler/ is `trainspec.compiler`, ...), which mypy cannot follow, nor the editable
# install's import hook. So this lays out the package as Python sees it, as symlinks
# under build/typecheck/, checks that, and names the real files in mypy's messages.
# Extra arguments go to mypy (e.g. tools/typecheck.sh --no-incremental).
set -euo pipefail
cd "$(dirname "$0")/.."
mypy=${MYPY:-.venv/bin/mypy}
tree=build/typecheck

rm -rf "$tree"
mkdir -p "$tree/trainspec"
# cli/ is the top package and holds no subfolders: link its files one by one, then
# link each subpackage's folder into it.
for f in cli/*.py cli/py.typed; do
  ln -s "../../../$f" "$tree/trainspec/$(basename "$f")"
done
ln -s ../../../compiler "$tree/trainspec/compiler"
ln -s ../../../server "$tree/trainspec/server"
ln -s ../../../trainer "$tree/trainspec/trainer"
ln -s ../../../proto/trainspec/v1 "$tree/trainspec/v1"

# mypy prints the paths it was given; map them back to the repository's folders.
status=0
MYPYPATH="$tree" "$mypy" -p trainspec "$@" >"$tree.out" 2>&1 || status=$?
sed -E \
  -e "s#^$tree/trainspec/(compiler|server|trainer)/#\\1/#" \
  -e "s#^$tree/trainspec/v1/#proto/trainspec/v1/#" \
  -e "s#^$tree/trainspec/#cli/#" \
  "$tree.out"
exit "$status"
