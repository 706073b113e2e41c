#!/usr/bin/env bash
# Installs what the end-to-end test needs into DIR (default target/vscode-e2e), each part once:
# Node 24 (the npm package node@24; code-server needs it), code-server (its install builds
# native modules against Node 24's headers), and @vscode/vsce with playwright-core (never a
# browser of its own: the test drives Debian's chromium). The Debian packages (build-essential,
# pkg-config, libkrb5-dev, libsecret-1-dev, libx11-dev, libxkbfile-dev, chromium) are the
# caller's to install. Exits non-zero, saying what failed, when a part cannot be installed.
set -uo pipefail

dir=${1:-target/vscode-e2e}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# The versions the test was written against.
node_version=24
code_server_version=4.139.1
vsce_version=4.1.0
playwright_version=1.65.1

npm_install() { # PREFIX PACKAGE...
  local prefix=$1
  shift
  mkdir -p "$prefix"
  npm install --prefix "$prefix" --no-audit --no-fund --no-save --loglevel=error "$@" >"$prefix/install.log" 2>&1
}

fail() {
  echo "vscode-e2e: $1 could not be installed; see $2" >&2
  exit 1
}

node24=$dir/node24/node_modules/node/bin/node
if [ ! -x "$node24" ]; then
  npm_install "$dir/node24" "node@$node_version" || fail "node@$node_version" "$dir/node24/install.log"
fi
"$node24" --version >/dev/null 2>&1 || fail "node@$node_version" "$dir/node24/install.log"
# The headers come with the package; without them node-gyp would try to download them.
# node-gyp wants the directory that holds include/node/.
node_h=$(find "$dir/node24/node_modules" -path '*/include/node/node.h' -print -quit)
[ -n "$node_h" ] || fail "node@$node_version (its headers)" "$dir/node24/install.log"
nodedir=${node_h%/include/node/node.h}

entry=$dir/code-server/node_modules/code-server/out/node/entry.js
if [ ! -f "$dir/code-server/.installed-$code_server_version" ]; then
  rm -rf "$dir/code-server"
  mkdir -p "$dir/code-server"
  # npm itself runs on Node 24 too, so the native modules are built for the Node that runs them.
  PATH="$(dirname "$node24"):$PATH" npm_config_nodedir="$nodedir" \
    "$node24" "$(command -v npm | xargs readlink -f)" install --prefix "$dir/code-server" \
    --no-audit --no-fund --no-save --loglevel=error "code-server@$code_server_version" \
    >"$dir/code-server/install.log" 2>&1 || fail "code-server@$code_server_version" "$dir/code-server/install.log"
  [ -f "$entry" ] || fail "code-server@$code_server_version" "$dir/code-server/install.log"
  touch "$dir/code-server/.installed-$code_server_version"
fi

if [ ! -f "$dir/tools/.installed-$vsce_version-$playwright_version" ]; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm_install "$dir/tools" "@vscode/vsce@$vsce_version" "playwright-core@$playwright_version" \
    || fail "@vscode/vsce and playwright-core" "$dir/tools/install.log"
  touch "$dir/tools/.installed-$vsce_version-$playwright_version"
fi
echo "vscode-e2e: code-server $("$node24" -p "require('$dir/code-server/node_modules/code-server/package.json').version"), Node $("$node24" --version)"
