# shellcheck shell=bash
# Named build targets: the nginx builds the module is built and tested for.
# Sourced by scripts/build, scripts/test, scripts/package and scripts/bench.
#
#   debian-12       the host itself (bookworm, nginx 1.22.1); no chroot
#   debian-13       a trixie chroot with its own nginx (1.26.x)
#   debian-testing  a forky chroot with its own nginx (1.29.x/1.30.x)
#   upstream        nginx 1.28.x from the nginx-src crate, configured
#                   --with-compat plus SSL, HTTP/2, HTTP/3, stream and
#                   --with-debug, built and run in the debian-13 chroot
#                   (OpenSSL 3.5 and a curl that speaks HTTP/3)
#
# A Debian chroot lives in build/chroots/NAME, made by debootstrap from
# Debian's mirror; a tarball of the bare debootstrap is kept beside it
# (build/chroots/SUITE-minbase.tar), so that a fresh chroot of a release
# takes seconds (target_fresh_root). A chroot is complete when its stamp file
# exists; one without it is half-made and is made again.
#
# Commands run in a target's userland through target_run: in a private mount
# namespace and PID namespace (unshare), in which /proc, /dev, /sys, a fresh
# tmpfs on /dev/shm and on /tmp, the work tree and the host's cargo and
# rustup homes (at the same absolute paths) are mounted. Everything mounted
# there vanishes with the namespace, whatever ends it (exit, failure,
# Ctrl-C, kill), and so do the processes left in it (nginx daemons).
#
# Functions (NAME is one of target_names):
#   target_check NAME          fails with a message for an unknown name
#   target_prepare NAME        makes the chroot and the configured nginx tree
#                              (and for upstream, the nginx binary); idempotent
#   target_make_chroot NAME    only the chroot (waited for by target_prepare)
#   target_run NAME CMD...     runs CMD in NAME's userland, in the current
#                              directory (which must be inside the work tree)
#   target_root NAME           the chroot directory, empty for debian-12
#   target_nginx_tree NAME     the configured nginx tree the module builds
#                              against (NGINX_SOURCE_DIR)
#   target_nginx_binary NAME   the nginx binary, as seen in NAME's userland
#   target_cargo_dir NAME      the module's CARGO_TARGET_DIR
#   target_module NAME         the built module
#   target_env NAME            prints NAME=value lines: NGINX_SOURCE_DIR,
#                              NGINX_BUILD_DIR, CARGO_TARGET_DIR
#   target_fresh_root SUITE DIR  unpacks SUITE's bare debootstrap into DIR
#   target_chroot_run ROOT CMD...  target_run for any root directory

target_top=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
target_mirror=http://deb.debian.org/debian

# Installed in every chroot: what scripts/setup installs on the host, the
# build-time tools of the packaging (debhelper, dpkg-dev) and what the tests
# call (pgrep, curl, faketime for the OCSP tests, and the HTTP/3 tests'
# aioquic client).
target_packages=(nginx nginx-dev libclang-dev libssl-dev pkg-config
    build-essential openssl curl ca-certificates procps
    libio-socket-ssl-perl libnet-ssleay-perl libprotocol-http2-perl
    libjson-pp-perl libpcre2-dev zlib1g-dev debhelper dpkg-dev
    python3-aioquic faketime)

# The upstream nginx tree: the nginx-src crate (the one ngx's "vendored"
# feature builds), fetched from crates.io with cargo.
target_upstream_crate='nginx-src@=1.28.5+1.28.3'
target_upstream_flags=(--with-compat --with-debug
    --with-http_ssl_module --with-http_v2_module --with-http_v3_module
    --with-http_realip_module --with-http_stub_status_module
    --with-stream --with-stream_ssl_module --with-stream_ssl_preread_module)

target_names() { echo debian-12 debian-13 debian-testing upstream; }

target_check() {
    case "${1:-}" in
    debian-12|debian-13|debian-testing|upstream) ;;
    *)
        echo "unknown target '${1:-}' (targets: $(target_names))" >&2
        return 1 ;;
    esac
}

# The Debian suite a chroot is made of; the userland a target runs in.
target_suite() {
    case "$1" in
    debian-13) echo trixie ;;
    debian-testing) echo forky ;;
    esac
}
target_userland() {
    case "$1" in
    upstream) echo debian-13 ;;
    *) echo "$1" ;;
    esac
}

target_root() {
    local land
    land=$(target_userland "$1")
    if [ "$land" = debian-12 ]; then echo ""; else echo "$target_top/build/chroots/$land"; fi
}

target_nginx_tree() {
    case "$1" in
    debian-12) echo "$target_top/build/nginx" ;;
    *) echo "$target_top/build/targets/$1/nginx" ;;
    esac
}

target_nginx_binary() {
    case "$1" in
    upstream) echo "$(target_nginx_tree upstream)/objs/nginx" ;;
    *) echo /usr/sbin/nginx ;;
    esac
}

# debian-12 keeps the directories of a plain `cargo build`, so that the
# host's build is never made twice.
target_cargo_dir() {
    case "$1" in
    debian-12) echo "$target_top/target" ;;
    *) echo "$target_top/target/$1" ;;
    esac
}

target_module() {
    echo "$(target_cargo_dir "$1")/release/libngx_http_mtls_module.so"
}

target_env() {
    local tree
    tree=$(target_nginx_tree "$1")
    echo "NGINX_SOURCE_DIR=$tree"
    echo "NGINX_BUILD_DIR=$tree/objs"
    echo "CARGO_TARGET_DIR=$(target_cargo_dir "$1")"
}

target_log() { echo "target: $*" >&2; }

# Holds an exclusive lock on build/locks/NAME for the rest of the calling
# (sub)shell, so that two scripts never make the same chroot or tree at once.
target_lock() {
    mkdir -p "$target_top/build/locks"
    exec {target_lock_fd}>"$target_top/build/locks/$1.lock"
    flock "$target_lock_fd"
}

target_host_install() {
    local missing=() p
    for p in "$@"; do
        dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q 'install ok installed' \
            || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
    target_log "installing ${missing[*]} on the host"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
        "${missing[@]}" >/dev/null
}

# The bare debootstrap of SUITE, as a tarball (made once, then kept).
target_pristine() {
    local suite=$1 dir="$target_top/build/chroots"
    local tar="$dir/$suite-minbase.tar" tmp="$dir/.$suite-debootstrap"
    [ -f "$tar" ] && return 0
    target_host_install debootstrap util-linux
    mkdir -p "$dir"
    rm -rf "$tmp" "$tar.tmp"
    target_log "debootstrap $suite (log: $tmp.log)"
    # The host's debootstrap may predate the suite: every current suite uses
    # the same script as sid.
    local script=/usr/share/debootstrap/scripts/$suite
    [ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
    # In its own mount and PID namespaces, as target_run: the proc and sys
    # debootstrap mounts in the new root, and debootstrap itself, end with
    # unshare, also when the caller is killed midway (.ci/run makes the
    # chroots in the background and stops them when it fails early).
    if ! unshare --mount --propagation private --pid --fork --kill-child \
        debootstrap --variant=minbase "$suite" "$tmp" "$target_mirror" "$script" \
        >"$tmp.log" 2>&1; then
        tail -n 20 "$tmp.log" >&2
        target_log "debootstrap $suite failed"
        return 1
    fi
    # Numeric owners, so that unpacking never maps them by the host's names.
    tar -C "$tmp" --numeric-owner -cf "$tar.tmp" . &&
        mv "$tar.tmp" "$tar" &&
        rm -rf "$tmp"
}

# Unpacks SUITE's bare debootstrap into DIR (which must not exist), for a
# chroot or for a packaging test that wants a fresh release.
target_fresh_root() {
    local suite=$1 root=$2
    if [ "$(id -u)" -ne 0 ]; then
        target_log "debootstrap needs root: run as root"
        return 1
    fi
    target_pristine "$suite" || return 1
    mkdir -p "$root" &&
        tar -C "$root" --numeric-owner -xf "$target_top/build/chroots/$suite-minbase.tar" &&
        cp -L /etc/resolv.conf "$root/etc/resolv.conf" || return 1
    # forky's Release file outlives its Valid-Until date between uploads.
    if [ "$suite" = forky ]; then
        echo 'Acquire::Check-Valid-Until "false";' >"$root/etc/apt/apt.conf.d/99mtls-valid-until"
    fi
}

# Makes build/chroots/NAME with target_packages installed.
target_chroot() {
    local land=$1 suite root stamp want
    suite=$(target_suite "$land")
    root=$(target_root "$land")
    stamp="$root/.mtls-target-ready"
    want="$suite ${target_packages[*]}"
    if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then return 0; fi
    if [ ! -f "$stamp" ]; then
        # Never made, or interrupted while made: start again.
        rm -rf "$root"
        target_fresh_root "$suite" "$root" || return 1
    fi
    target_log "installing packages in $land (log: $root.log)"
    if ! cd "$target_top" || ! target_chroot_run "$root" sh -c '
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -q && apt-get install -y -q --no-install-recommends "$@"
        ' - "${target_packages[@]}" >"$root.log" 2>&1; then
        tail -n 20 "$root.log" >&2
        target_log "package installation in $land failed"
        return 1
    fi
    echo "$want" >"$stamp"
}

# Copies a Debian release's nginx source (nginx-dev) to the target's tree and
# configures it with that release's flags, inside its userland.
target_debian_tree() {
    local name=$1 tree version stamp
    tree=$(target_nginx_tree "$name")
    version=$(cd "$target_top" && target_run "$name" dpkg-query -W -f='${Version}' nginx-dev)
    stamp="$tree/.configured-$version"
    [ -f "$stamp" ] && return 0
    target_log "configuring nginx $version for $name in $tree"
    rm -rf "$tree" && mkdir -p "$tree" || return 1
    # conf_flags defines the bash array NGX_CONF_FLAGS (so: bash, not sh).
    (cd "$tree" && target_run "$name" bash -c '
        cp -a /usr/share/nginx/src/. . && . /usr/share/nginx/src/conf_flags &&
        ./configure "${NGX_CONF_FLAGS[@]}"' >configure.log 2>&1) || {
        tail -n 30 "$tree/configure.log" >&2
        return 1
    }
    touch "$stamp"
}

# Fetches the nginx-src crate, configures and builds its nginx.
target_upstream_tree() {
    local tree fetch src stamp
    tree=$(target_nginx_tree upstream)
    fetch="$target_top/build/targets/upstream/fetch"
    stamp="$tree/.built-$target_upstream_crate"
    [ -f "$stamp" ] && return 0
    mkdir -p "$fetch/src" && : >"$fetch/src/lib.rs" || return 1
    cat >"$fetch/Cargo.toml" <<EOF
# Made by scripts/lib/target.sh: only fetches the nginx source.
[package]
name = "mtls-upstream-nginx"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
nginx-src = "${target_upstream_crate#nginx-src@}"

[workspace]
EOF
    src=$(cd "$fetch" && cargo fetch -q && cargo metadata -q --format-version 1 |
        perl -MJSON::PP -0ne 'for (@{decode_json($_)->{packages}}) {
            if ($_->{name} eq "nginx-src") { $_->{manifest_path} =~ s{/Cargo.toml$}{}; print $_->{manifest_path}; }
        }')
    if [ ! -f "$src/nginx/src/core/nginx.h" ]; then
        target_log "nginx-src: no nginx tree under '$src'"
        return 1
    fi
    target_log "building nginx from $src/nginx in $tree (log: $tree/build.log)"
    rm -rf "$tree" && mkdir -p "$tree" && cp -a "$src/nginx/." "$tree/" || return 1
    (cd "$tree" && target_run upstream sh -c '
        auto/configure --prefix="$PWD/prefix" "$@" && make -j2' - \
        "${target_upstream_flags[@]}" >build.log 2>&1) || {
        tail -n 30 "$tree/build.log" >&2
        return 1
    }
    touch "$stamp"
}

# Only the chroot of NAME's userland (debootstrap and apt: mostly network
# and disk, so it may run beside a build). A target_prepare meanwhile waits.
target_make_chroot() {
    target_check "$1" || return 1
    [ "$1" = debian-12 ] && return 0
    (
        target_lock "$(target_userland "$1")"
        target_chroot "$(target_userland "$1")"
    )
}

target_prepare() {
    local name=$1
    target_check "$name" || return 1
    case "$name" in
    debian-12)
        "$target_top/scripts/setup"
        return ;;
    esac
    target_make_chroot "$name" || return 1
    (
        target_lock "tree-$name"
        case "$name" in
        upstream) target_upstream_tree ;;
        *) target_debian_tree "$name" ;;
        esac
    )
}

target_run() {
    local name=$1 root
    shift
    target_check "$name" || return 1
    root=$(target_root "$name")
    if [ -z "$root" ]; then
        MTLS_TARGET=$name "$@"
        return
    fi
    MTLS_TARGET=$name target_chroot_run "$root" "$@"
}

# Runs CMD in ROOT in new mount and PID namespaces. The caller's directory
# must be inside the work tree, which is mounted at the same path.
target_chroot_run() {
    local root=$1
    shift
    if [ "$(id -u)" -ne 0 ]; then
        target_log "a target's chroot needs root (mount, chroot): run as root"
        return 1
    fi
    case "$PWD/" in
    "$target_top"/*) ;;
    *)
        target_log "run from inside $target_top, not $PWD"
        return 1 ;;
    esac
    local cargo=${CARGO_HOME:-$HOME/.cargo} rustup=${RUSTUP_HOME:-$HOME/.rustup} git
    # A git worktree keeps its repository elsewhere; cargo lists the
    # package's files with it, and without it walks all of build/.
    git=$(git -C "$target_top" rev-parse --path-format=absolute --git-common-dir 2>/dev/null) || git=
    case "$git/" in "$target_top"/*) git= ;; esac
    # Whatever ends this shell, the namespace ends too: unshare gets SIGKILL
    # when its parent dies (setpriv), and --kill-child then kills the
    # namespace's first process, which takes every process of the namespace
    # with it. unshare itself holds SIGINT and SIGTERM until its child ends.
    setpriv --pdeathsig KILL -- \
    unshare --mount --propagation private --pid --fork --kill-child -- \
        bash -c '
        # This shell is the namespace'"'"'s init, which the kernel spares from
        # signals it has no handler for: first of all, a handler. On a
        # signal it asks every other process of the namespace to stop (a
        # command started with & ignores SIGINT, so SIGTERM), then returns
        # what the command returns.
        trap "kill -TERM -1 2>/dev/null" TERM INT HUP
        set -e
        root=$1 dir=$2
        shift 2
        binds=()
        while [ "$1" != -- ]; do binds+=("$1"); shift; done
        shift
        mount -t proc proc "$root/proc"
        mount --rbind /sys "$root/sys"
        mount --rbind /dev "$root/dev"
        mkdir -p "$root/dev/shm"
        mount -t tmpfs -o mode=1777 shm "$root/dev/shm"
        mount -t tmpfs -o mode=1777 tmp "$root/tmp"
        for d in "${binds[@]}"; do
            [ -d "$d" ] || continue
            mkdir -p "$root$d"
            mount --bind "$d" "$root$d"
        done
        exec 3<&0
        chroot "$root" /bin/sh -c "cd \"\$0\" && exec \"\$@\"" "$dir" "$@" <&3 &
        child=$!
        while :; do
            set +e
            wait "$child"
            rc=$?
            set -e
            kill -0 "$child" 2>/dev/null || exit "$rc"
        done
        ' - "$root" "$PWD" "$target_top" "$cargo" "$rustup" ${git:+"$git"} -- \
        env -u LC_ALL -u LANGUAGE \
            PATH="$cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
            CARGO_HOME="$cargo" RUSTUP_HOME="$rustup" LANG=C.UTF-8 TMPDIR=/tmp "$@"
}
