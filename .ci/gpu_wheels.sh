#!/usr/bin/env bash
# The wheels that .ci/gpu_check.sh installs on a GPU machine without network access, downloaded on
# a machine that reaches the package registry into .gpu_wheels/ at the repository root (git-ignored;
# copy it to the GPU machine with the clone). A GPU machine that reaches the registry needs none.
# GPU_PYTHON (default 3.12) is the GPU machine's Python version.
#
# This project's lent GPU machine (Python 3.12, torch 2.11.0+cu130, no network) has no diffusers, and its
# transformers (5.x) and huggingface_hub (1.x) are newer than this project's pins (.ci/run:
# "diffusers>=0.30,<0.40", "transformers>=4.40,<5"). So: the same constraints as .ci/run, resolved
# for CPython 3.12 on manylinux x86-64, binary wheels only, with their dependencies; then the wheels
# of packages that image is known to hold in versions that satisfy them are dropped (numpy, Pillow:
# see KINDS.md of the device tool), so the folder stays small. setuptools, wheel and ninja come along
# for the --no-build-isolation build of the extension.
#
#   bash .ci/gpu_wheels.sh            # -> .gpu_wheels/*.whl and .gpu_wheels/SIZE
set -euo pipefail

cd "$(dirname "$0")/.."
dest=.gpu_wheels
rm -rf "$dest"
mkdir -p "$dest"

platforms=()
for tag in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 \
  manylinux2010_x86_64 manylinux1_x86_64; do
  platforms+=(--platform "$tag")
done

python3 -m pip download -q --dest "$dest" --only-binary=:all: --implementation cp --python-version "${GPU_PYTHON:-3.12}" "${platforms[@]}" \
  "diffusers>=0.30,<0.40" "transformers>=4.40,<5" "setuptools>=64" wheel ninja

# Present on the GPU image in versions every pin above accepts; their wheels are the bulk.
rm -f "$dest"/numpy-*.whl "$dest"/pillow-*.whl "$dest"/Pillow-*.whl

ls -1 "$dest"/*.whl | sed 's|.*/||' >"$dest/MANIFEST"
du -sh --apparent-size "$dest" | cut -f1 >"$dest/SIZE"
echo "$(wc -l <"$dest/MANIFEST") wheels in $dest, $(cat "$dest/SIZE")"
cat "$dest/MANIFEST"
