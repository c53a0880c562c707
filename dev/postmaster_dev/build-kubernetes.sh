#!/usr/bin/env bash
# Build kube-apiserver and kube-controller-manager from Debian bookworm's
# `kubernetes` source package into $1 (the cache directory), once.
#
# The source is fetched with apt's own client under a private configuration
# (own sources list with a deb-src line, own lists and cache directories), so
# the user's apt setup is left exactly as it was.
#
# Needs (Debian packages): golang-go rsync jq dpkg-dev
#   golang-github-modern-go-reflect2-dev (1.0.2 replaces the vendored 1.0.1,
#   which crashes the API server on the first custom-resource write under Go 1.19).
set -euo pipefail

out=${1:?usage: build-kubernetes.sh CACHE_DIR}
mirror=${POSTMASTER_DEBIAN_MIRROR:-http://deb.debian.org/debian}
work="$out/build"
mkdir -p "$work/apt/lists/partial" "$work/apt/cache/archives/partial" "$work/src" "$out/bin"

echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror bookworm main" >"$work/apt/sources.list"
apt_opts=(
  -o "Dir::Etc::SourceList=$work/apt/sources.list"
  -o "Dir::Etc::SourceParts=/dev/null"
  -o "Dir::State::Lists=$work/apt/lists"
  -o "Dir::Cache=$work/apt/cache"
  -o "Debug::NoLocking=1"
)
if [ "$(id -u)" = 0 ]; then apt_opts+=(-o "APT::Sandbox::User=root"); fi

echo ">> fetching the kubernetes source package (private apt configuration)"
apt-get -q "${apt_opts[@]}" update
rm -rf "$work/src"; mkdir -p "$work/src"
(cd "$work/src" && apt-get -q "${apt_opts[@]}" source --download-only kubernetes)
dsc=$(ls "$work/src"/kubernetes_*.dsc | head -n1)
dpkg-source --no-check -x "$dsc" "$work/src/kubernetes" >/dev/null

src="$work/src/kubernetes"
echo ">> replacing vendored modern-go/reflect2 with Debian's 1.0.2"
rm -rf "$src/vendor/github.com/modern-go/reflect2"
cp -r /usr/share/gocode/src/github.com/modern-go/reflect2 "$src/vendor/github.com/modern-go/reflect2"

echo ">> building kube-apiserver and kube-controller-manager (GOPATH mode; takes minutes, once)"
export GOPATH="$src/.go" CGO_ENABLED=0 GO111MODULE=off GOFLAGS= HOME="$work/home"
mkdir -p "$GOPATH/src/k8s.io" "$HOME"
[ -L "$GOPATH/src/k8s.io/kubernetes" ] || ln -s ../../.. "$GOPATH/src/k8s.io/kubernetes"
(cd "$GOPATH/src/k8s.io/kubernetes" && make WHAT="cmd/kube-apiserver cmd/kube-controller-manager")

for b in kube-apiserver kube-controller-manager; do
  install -m 0755 "$src/_output/bin/$b" "$out/bin/$b"
done
"$out/bin/kube-apiserver" --version
rm -rf "$work"
echo ">> done: $out/bin (${SECONDS}s)"
