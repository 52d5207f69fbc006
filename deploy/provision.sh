#!/usr/bin/env bash
# Switchboard on one Debian 12 host: FreeSWITCH 1.10, Redis, Switchboard in a virtualenv, two systemd units.
# The same script provisions the Vagrant VM (Vagrantfile) and a bare-metal or VM install: run it as root from a
# checkout of this repository (`sudo deploy/provision.sh`). It is re-runnable: what exists is kept, what is
# missing is installed, and the configuration files an operator edits are never overwritten.
#
#   SIGNALWIRE_TOKEN   set: FreeSWITCH from SignalWire's Debian packages (a SignalWire personal access token);
#                      unset: FreeSWITCH 1.10.12 built from source, with the modules freeswitch-conf/ needs
#   RTP_START_PORT     first and last RTP port FreeSWITCH uses (default 16384-16484, what the Vagrantfile
#   RTP_END_PORT       forwards); open the same range in your firewall
#   SIP_EXT_IP         the address the internal SIP profile puts in SDP and Contact (the Vagrantfile gives
#                      127.0.0.1, where the host's softphone reaches the forwarded ports); unset: FreeSWITCH's own
#   SWITCHBOARD_SRC    the checkout to install (default: the one this script is in)
#   TORCH_INDEX_URL    where the CPU build of torch comes from (default: PyTorch's CPU wheel index)
#
# `deploy/provision.sh --deploy-config < examples/agent.yaml` prints the configuration this script installs in
# /etc/switchboard/agent.yaml (nothing else runs, no root needed): the tests check it validates.
set -euo pipefail

FS_VERSION=1.10.12
LIBKS_VERSION=2.0.6
SOFIA_SIP_VERSION=1.13.17
SPANDSP_COMMIT=0d2e6ac
TORCH_VERSION=2.13.0
RTP_START_PORT=${RTP_START_PORT:-16384}
RTP_END_PORT=${RTP_END_PORT:-16484}
SIP_EXT_IP=${SIP_EXT_IP:-}
TORCH_INDEX_URL=${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}
SIGNALWIRE_REPO=https://freeswitch.signalwire.com/repo/deb/debian-release
BUILD_DIR=/usr/local/src/switchboard-freeswitch

PREFIX=/opt/switchboard            # the virtualenv; the installed source tree is $PREFIX/src
CONF_DIR=/etc/switchboard          # agent.yaml, templates/, switchboard.env (secrets)
STATE_DIR=/var/lib/switchboard     # server.state_dir, knowledge indexes
FS_CONF=/etc/freeswitch
FS_MODULES=/usr/lib/freeswitch/mod
METRICS_PORT=9188                  # server.metrics_port; deploy/prometheus-switchboard.yml scrapes it
REDIS_URL=redis://127.0.0.1:6379/0

# What freeswitch-conf/ and the example agent use (freeswitch-conf/switch-vars.md): the socket app and the apps
# Switchboard executes, SIP, the XML dialplan, both TTS modules, beep detection, the sound formats the safety
# net plays. ASR modules (mod_unimrcp, mod_vosk) live outside the FreeSWITCH tree: until one is added, agents
# take DTMF turns only (Switchboard logs it at the first call).
REQUIRED_MODULES=(mod_event_socket mod_sofia mod_dptools mod_commands mod_dialplan_xml mod_flite
                  mod_tts_commandline mod_avmd mod_sndfile mod_native_file mod_tone_stream mod_loopback)

say() { printf '\n==> %s\n' "$*"; }
note() { printf '    %s\n' "$*"; }
die() { printf '\nprovision: %s\n' "$*" >&2; exit 1; }

# The example configuration as this host runs it: the worker in its own unit, state under /var/lib, Debian's
# Redis, metrics on. Each edit must take: a changed example stops here rather than install something else.
deploy_config() {
    local text
    text=$(sed -E \
        -e 's|^(  run_worker:) true( +)#.*$|\1 false  # the switchboard-worker unit runs the after-call worker|' \
        -e 's|^(  state_dir:) state( +)#.*$|\1 /var/lib/switchboard  # systemd StateDirectory, 0700|' \
        -e "s|^  state_dir: /var/lib/switchboard.*$|&\\n  metrics_port: ${METRICS_PORT}         # Prometheus /metrics and /healthz on 127.0.0.1|" \
        -e "s|^  # url: redis://127.0.0.1:6379/0 .*$|  url: ${REDIS_URL}   # Debian's redis-server (the units say the same in REDIS_URL)|" \
        -e 's|^(    index_dir:) state/knowledge/faq( +)#.*$|\1 /var/lib/switchboard/knowledge/faq  # built by provision.sh|')
    local expected
    for expected in "  run_worker: false" "  state_dir: /var/lib/switchboard" "  metrics_port: ${METRICS_PORT}" \
                    "  url: ${REDIS_URL}" "    index_dir: /var/lib/switchboard/knowledge/faq"; do
        grep -qF -- "$expected" <<<"$text" || die "examples/agent.yaml no longer has the line this script edits into '$expected'; update deploy_config in $0"
    done
    printf '%s\n' "$text"
}

if [[ ${1:-} == --deploy-config ]]; then
    deploy_config
    exit 0
fi

[[ $EUID -eq 0 ]] || die "run as root: sudo $0"
# shellcheck source=/dev/null
. /etc/os-release
[[ ${ID:-} == debian && ${VERSION_CODENAME:-} == bookworm ]] || die "Debian 12 (bookworm) only, this is ${PRETTY_NAME:-unknown}"
SRC=${SWITCHBOARD_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
[[ -f $SRC/setup.cfg && -f $SRC/examples/agent.yaml && -d $SRC/freeswitch-conf ]] || die "$SRC is not a Switchboard checkout (set SWITCHBOARD_SRC)"
[[ $RTP_START_PORT =~ ^[0-9]+$ && $RTP_END_PORT =~ ^[0-9]+$ && $RTP_START_PORT -lt $RTP_END_PORT ]] || die "RTP_START_PORT must be below RTP_END_PORT, both numbers"
export DEBIAN_FRONTEND=noninteractive
FS_CHANGED=0

apt_install() { apt-get install -y --no-install-recommends "$@"; }

install_base() {
    say "Debian packages: Redis, Python 3.11, tools"
    apt-get update
    apt_install ca-certificates curl gnupg git redis-server python3 python3-venv
    # Switchboard's durability assumes an append-only file fsynced every second (README: Operations)
    sed -i -E -e 's/^appendonly no$/appendonly yes/' -e 's/^# *appendfsync everysec$/appendfsync everysec/' /etc/redis/redis.conf
    systemctl enable redis-server
    systemctl restart redis-server
}

install_freeswitch_packages() {
    say "FreeSWITCH 1.10 from SignalWire's packages (SIGNALWIRE_TOKEN is set)"
    install -d -m 0755 /etc/apt/auth.conf.d
    (umask 077 && printf 'machine freeswitch.signalwire.com login signalwire password %s\n' "$SIGNALWIRE_TOKEN" \
        > /etc/apt/auth.conf.d/freeswitch.conf)
    # the keyring sits behind the same login: curl reads it from the netrc-format file, not from the command line
    curl -fsSL --netrc-file /etc/apt/auth.conf.d/freeswitch.conf -o /usr/share/keyrings/signalwire-freeswitch-repo.gpg \
        "$SIGNALWIRE_REPO/signalwire-freeswitch-repo.gpg" || die "cannot fetch SignalWire's keyring: is SIGNALWIRE_TOKEN a valid personal access token?"
    echo "deb [signed-by=/usr/share/keyrings/signalwire-freeswitch-repo.gpg] $SIGNALWIRE_REPO/ bookworm main" \
        > /etc/apt/sources.list.d/freeswitch.list
    apt-get update
    local packages=(freeswitch-meta-vanilla freeswitch-conf-vanilla freeswitch-systemd freeswitch-sounds-en-us-callie) module
    for module in "${REQUIRED_MODULES[@]}"; do
        packages+=("freeswitch-${module//_/-}")
    done
    apt_install "${packages[@]}"
    if [[ ! -f $FS_CONF/freeswitch.xml ]]; then
        cp -a /usr/share/freeswitch/conf/vanilla/. "$FS_CONF"/
        FS_CHANGED=1
    fi
}

checkout() {  # checkout DIR URL REF: a clone at REF, fetched once
    local dir=$1 url=$2 ref=$3
    [[ -d $dir/.git ]] || git clone --quiet "$url" "$dir"
    git -C "$dir" fetch --quiet --tags origin
    git -C "$dir" checkout --quiet --force "$ref"
}

build_freeswitch_from_source() {
    if command -v freeswitch >/dev/null && freeswitch -version | grep -qF "$FS_VERSION"; then
        note "FreeSWITCH $FS_VERSION already built: $(freeswitch -version)"
        return
    fi
    say "FreeSWITCH $FS_VERSION from source (no SIGNALWIRE_TOKEN): libks v$LIBKS_VERSION, sofia-sip v$SOFIA_SIP_VERSION, spandsp $SPANDSP_COMMIT; 20-40 min on 2 cores"
    apt_install build-essential cmake automake autoconf libtool libtool-bin pkg-config git yasm nasm \
        libssl-dev zlib1g-dev uuid-dev libncurses-dev libedit-dev libpcre3-dev libsqlite3-dev libcurl4-openssl-dev \
        libjpeg-dev libtiff-dev libspeex-dev libspeexdsp-dev libogg-dev libopus-dev \
        libsndfile1-dev libflac-dev libvorbis-dev flite1-dev libldns-dev
    install -d "$BUILD_DIR"
    local jobs
    jobs=$(nproc)

    checkout "$BUILD_DIR/libks" https://github.com/signalwire/libks.git "v$LIBKS_VERSION"
    (cd "$BUILD_DIR/libks" && cmake . -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr && make -j"$jobs" && make install)

    checkout "$BUILD_DIR/sofia-sip" https://github.com/freeswitch/sofia-sip.git "v$SOFIA_SIP_VERSION"
    (cd "$BUILD_DIR/sofia-sip" && ./bootstrap.sh && ./configure --prefix=/usr --with-pic --with-glib=no \
        --without-doxygen --disable-stun && make -j"$jobs" && make install)

    checkout "$BUILD_DIR/spandsp" https://github.com/freeswitch/spandsp.git "$SPANDSP_COMMIT"
    (cd "$BUILD_DIR/spandsp" && ./bootstrap.sh && ./configure --prefix=/usr --with-pic && make -j"$jobs" && make install)
    ldconfig

    checkout "$BUILD_DIR/freeswitch" https://github.com/signalwire/freeswitch.git "v$FS_VERSION"
    cd "$BUILD_DIR/freeswitch"
    ./bootstrap.sh -j
    # The modules this host needs and a few the vanilla configuration loads; nothing that needs libraries
    # Debian 12 lacks (mod_signalwire, mod_av) or that Switchboard never uses.
    cat > modules.conf <<'MODULES'
applications/mod_avmd
applications/mod_commands
applications/mod_db
applications/mod_dptools
applications/mod_expr
applications/mod_fifo
applications/mod_hash
applications/mod_spandsp
applications/mod_voicemail
asr_tts/mod_flite
asr_tts/mod_tts_commandline
codecs/mod_g723_1
codecs/mod_g729
codecs/mod_opus
dialplans/mod_dialplan_xml
endpoints/mod_loopback
endpoints/mod_rtc
endpoints/mod_sofia
event_handlers/mod_cdr_csv
event_handlers/mod_event_socket
formats/mod_local_stream
formats/mod_native_file
formats/mod_sndfile
formats/mod_tone_stream
loggers/mod_console
loggers/mod_logfile
say/mod_say_en
say/mod_say_fr
MODULES
    # the Debian packages' layout: /etc/freeswitch, /usr/lib/freeswitch/mod, /var/lib/freeswitch, /var/log/freeswitch
    ./configure --prefix=/usr --sysconfdir=/etc --localstatedir=/var --disable-dependency-tracking
    make -j"$jobs"
    make install
    make sounds-install moh-install
    [[ -f $FS_CONF/freeswitch.xml ]] || make samples
    cd - >/dev/null
    id freeswitch >/dev/null 2>&1 || useradd --system --user-group --home-dir /var/lib/freeswitch --shell /usr/sbin/nologin freeswitch
    install -d /var/lib/freeswitch /var/log/freeswitch
    chown -R freeswitch:freeswitch "$FS_CONF" /var/lib/freeswitch /var/log/freeswitch /usr/share/freeswitch
    install -m 0644 "$SRC/deploy/freeswitch.service" /etc/systemd/system/freeswitch.service
    FS_CHANGED=1
}

install_once() {  # install_once SRC DEST MODE: copy when DEST is missing; otherwise keep it and say so
    local from=$1 to=$2 mode=$3
    if [[ ! -e $to ]]; then
        install -D -m "$mode" "$from" "$to"
        note "installed $to"
        return 0
    fi
    cmp -s "$from" "$to" || note "kept $to (yours differs from $from: diff them to take the repo's changes)"
    return 1
}

configure_freeswitch() {
    say "FreeSWITCH configuration from freeswitch-conf/ (RTP $RTP_START_PORT-$RTP_END_PORT)"
    local conf=$SRC/freeswitch-conf password
    password=$(esl_password)
    if [[ ! -e $FS_CONF/autoload_configs/event_socket.conf.xml.switchboard ]]; then
        sed "s|value=\"CHANGE-ME\"|value=\"$password\"|" "$conf/event_socket.conf.xml" > "$FS_CONF/autoload_configs/event_socket.conf.xml"
        touch "$FS_CONF/autoload_configs/event_socket.conf.xml.switchboard"  # ours now: later runs keep edits
        FS_CHANGED=1
    fi
    install_once "$conf/tts_commandline.conf.xml" "$FS_CONF/autoload_configs/tts_commandline.conf.xml" 0644 && FS_CHANGED=1
    install_once "$conf/vars-switchboard.xml" "$FS_CONF/vars-switchboard.xml" 0644 && FS_CHANGED=1
    install_once "$conf/dialplan-switchboard.xml" "$FS_CONF/dialplan/default/dialplan-switchboard.xml" 0644 && FS_CHANGED=1
    if ! grep -qF 'data="vars-switchboard.xml"' "$FS_CONF/vars.xml"; then
        sed -i 's|^</include>|  <X-PRE-PROCESS cmd="include" data="vars-switchboard.xml"/>\n</include>|' "$FS_CONF/vars.xml"
        FS_CHANGED=1
    fi
    edit_xml "$FS_CONF/autoload_configs/switch.conf.xml" rtp-start-port "$RTP_START_PORT"
    edit_xml "$FS_CONF/autoload_configs/switch.conf.xml" rtp-end-port "$RTP_END_PORT"
    if [[ -n $SIP_EXT_IP ]]; then
        edit_xml "$FS_CONF/sip_profiles/internal.xml" ext-rtp-ip "$SIP_EXT_IP"
        edit_xml "$FS_CONF/sip_profiles/internal.xml" ext-sip-ip "$SIP_EXT_IP"
    fi
    local module
    for module in "${REQUIRED_MODULES[@]}"; do
        [[ -e $FS_MODULES/$module.so ]] || die "FreeSWITCH module $module is missing from $FS_MODULES"
        if ! grep -qE "^[[:space:]]*<load module=\"$module\"/>" "$FS_CONF/autoload_configs/modules.conf.xml"; then
            sed -i "s|^\([[:space:]]*\)</modules>|\1  <load module=\"$module\"/>\n\1</modules>|" "$FS_CONF/autoload_configs/modules.conf.xml"
            note "modules.conf.xml: loads $module"
            FS_CHANGED=1
        fi
    done
    chown -R freeswitch:freeswitch "$FS_CONF"
    systemctl daemon-reload
    systemctl enable freeswitch
    if [[ $FS_CHANGED == 1 ]] || ! systemctl is-active --quiet freeswitch; then
        systemctl restart freeswitch
    fi
}

edit_xml() {  # edit_xml FILE PARAM VALUE: <param name="PARAM" value="VALUE"/> in <settings>, once, uncommented
    local file=$1 name=$2 value=$3 line
    line="<param name=\"$name\" value=\"$value\"/>"
    grep -qF "$line" "$file" && ! grep -qE "<!--.*name=\"$name\"" "$file" && return 0
    sed -i -E "/name=\"$name\"/d" "$file"
    sed -i "0,/<settings>/s|<settings>|<settings>\n    $line|" "$file"
    note "$(basename "$file"): $name=$value"
    FS_CHANGED=1
}

esl_password() {  # the inbound event socket's password, made once and kept in switchboard.env for `switchboard call`
    local env=$CONF_DIR/switchboard.env value
    if [[ -f $env ]] && value=$(sed -n 's/^FREESWITCH_ESL_PASSWORD=//p' "$env") && [[ -n $value ]]; then
        printf '%s' "$value"
    else
        head -c 18 /dev/urandom | base64 | tr -d '/+='
    fi
}

install_switchboard() {
    say "Switchboard in $PREFIX (user switchboard, config $CONF_DIR, state $STATE_DIR)"
    id switchboard >/dev/null 2>&1 || useradd --system --user-group --home-dir "$STATE_DIR" --shell /usr/sbin/nologin switchboard
    install -d -m 0700 -o switchboard -g switchboard "$STATE_DIR"
    install -d -m 0750 -o root -g switchboard "$CONF_DIR"
    [[ -x $PREFIX/bin/python ]] || python3 -m venv "$PREFIX"
    rm -rf "$PREFIX/src.new"
    install -d "$PREFIX/src.new"
    tar -C "$SRC" --exclude=.git --exclude=.venv --exclude=state --exclude='*.egg-info' -cf - . | tar -C "$PREFIX/src.new" -xf -
    rm -rf "$PREFIX/src"
    mv "$PREFIX/src.new" "$PREFIX/src"
    if ! "$PREFIX/bin/python" -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
        note "torch $TORCH_VERSION, CPU build (no CUDA libraries pulled in)"
        "$PREFIX/bin/pip" install --disable-pip-version-check --index-url "$TORCH_INDEX_URL" "torch==$TORCH_VERSION"
    fi
    "$PREFIX/bin/pip" install --disable-pip-version-check "$PREFIX/src"

    local env=$CONF_DIR/switchboard.env
    if [[ ! -f $env ]]; then
        (umask 027 && cat > "$env" <<ENV
# Environment of the switchboard and switchboard-worker units (secrets: 0640 root:switchboard).
# The inbound event socket's password (also in $FS_CONF/autoload_configs/event_socket.conf.xml):
FREESWITCH_ESL_PASSWORD=$(esl_password)
# SWITCHBOARD_SMTP_PASSWORD=...      named by smtp.password_env in agent.yaml
# REDIS_URL=redis+sentinel://host1:26379,host2:26379/mymaster   overrides the units' Debian Redis
ENV
)
        chgrp switchboard "$env"
        note "installed $env"
    fi
    if [[ ! -f $CONF_DIR/agent.yaml ]]; then
        deploy_config < "$SRC/examples/agent.yaml" > "$CONF_DIR/agent.yaml.new"
        chmod 0640 "$CONF_DIR/agent.yaml.new"
        chgrp switchboard "$CONF_DIR/agent.yaml.new"
        mv "$CONF_DIR/agent.yaml.new" "$CONF_DIR/agent.yaml"
        note "installed $CONF_DIR/agent.yaml (examples/agent.yaml with run_worker false, state in $STATE_DIR, metrics on $METRICS_PORT)"
    else
        note "kept $CONF_DIR/agent.yaml"
    fi
    if [[ ! -d $CONF_DIR/templates ]]; then
        cp -r "$SRC/examples/templates" "$CONF_DIR/templates"
        chgrp -R switchboard "$CONF_DIR/templates"
        chmod -R g+rX,o-rwx "$CONF_DIR/templates"
    fi
    if [[ ! -d $STATE_DIR/knowledge/faq ]]; then
        note "building the example knowledge base (faq)"
        as_switchboard knowledge index faq "$PREFIX/src/examples/knowledge/faq-fr" --config "$CONF_DIR/agent.yaml"
    fi
}

with_env() {  # with_env CMD...: CMD in the units' environment (switchboard.env, REDIS_URL, HOME), cwd the state
    (
        set -a
        # shellcheck source=/dev/null
        . "$CONF_DIR/switchboard.env"
        set +a
        export REDIS_URL HOME=$STATE_DIR
        cd "$STATE_DIR"
        "$@"
    )
}

as_switchboard() {  # a switchboard command as the service runs it: its user, its environment
    with_env runuser -u switchboard -- "$PREFIX/bin/switchboard" --log-text "$@"
}

start_units() {
    say "Checking $CONF_DIR/agent.yaml against the installed dialplan"
    local dialplan=$FS_CONF/dialplan/default/dialplan-switchboard.xml
    with_env "$PREFIX/bin/switchboard" --log-text check "$CONF_DIR/agent.yaml" --dialplan "$dialplan" \
        || die "switchboard check failed (above): fix $CONF_DIR/agent.yaml or $dialplan, then run this script again"

    say "systemd units switchboard and switchboard-worker"
    install -m 0644 "$SRC/deploy/switchboard.service" "$SRC/deploy/switchboard-worker.service" /etc/systemd/system/
    systemctl daemon-reload
    systemctl enable switchboard switchboard-worker
    # Type=notify: restart returns once each process said READY (or fails with the reason in the journal)
    systemctl restart switchboard || die "switchboard did not start: journalctl -u switchboard -n 50"
    systemctl restart switchboard-worker || die "switchboard-worker did not start: journalctl -u switchboard-worker -n 50"
}

install_base
if [[ -n ${SIGNALWIRE_TOKEN:-} ]]; then
    install_freeswitch_packages
else
    build_freeswitch_from_source
fi
install_switchboard
configure_freeswitch
start_units

say "Done"
note "FreeSWITCH: SIP on 5060 (udp, tcp), RTP $RTP_START_PORT-$RTP_END_PORT; fs_cli -x 'sofia status'"
note "Switchboard: systemctl status switchboard switchboard-worker; journalctl -u switchboard -f"
note "Metrics: curl -s 127.0.0.1:$METRICS_PORT/metrics; health: curl -s 127.0.0.1:$METRICS_PORT/healthz"
note "Call: register a softphone as 1000 (password: default_password in $FS_CONF/vars.xml) and dial 33184808080"
