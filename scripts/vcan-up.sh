#!/usr/bin/env bash
# Create and raise virtual SocketCAN interfaces (vcan) for nightly runs and socketcan tests.
#
#   sudo scripts/vcan-up.sh               # vcan0
#   sudo scripts/vcan-up.sh vcan0 vcan1   # several buses (e.g. battery and motor)
#   sudo scripts/vcan-up.sh --fd vcan0    # CAN FD capable (MTU 72)
#
# Idempotent: an interface that already exists is checked (it must be a vcan), given the MTU asked
# for, and raised; running it twice changes nothing. Without --fd a new interface gets the classic
# MTU 16 (the kernel's vcan default is 72: a classic bench bus should refuse FD frames, as a real
# classic bus does), and an existing FD interface stays FD (it carries classic frames as well).
# Exit status: 0 all interfaces up, 1 something could not be done (one line says what), 2 usage.
set -euo pipefail

readonly CLASSIC_MTU=16 FD_MTU=72 ARPHRD_CAN=280
prog=${0##*/}

usage() {
    echo "usage: $prog [--fd] [NAME...]   (default NAME: vcan0; run as root)"
}

die() {
    echo "$prog: $*" >&2
    exit 1
}

fd=0
names=()
for arg in "$@"; do
    case $arg in
        --fd) fd=1 ;;
        -h | --help) usage; exit 0 ;;
        -*) echo "$prog: unknown option $arg" >&2; usage >&2; exit 2 ;;
        *)
            # Linux interface names: at most 15 characters, no slash or whitespace.
            if [[ ! $arg =~ ^[A-Za-z0-9_.-]{1,15}$ ]]; then
                echo "$prog: not a valid interface name: '$arg'" >&2
                exit 2
            fi
            names+=("$arg")
            ;;
    esac
done
((${#names[@]})) || names=(vcan0)

sys_net=/sys/class/net

# Already as asked? Then succeed without root: a nightly job may call this unconditionally.
is_ready() {
    local name=$1 dir=$sys_net/$1
    [[ -d $dir && $(<"$dir/type") == "$ARPHRD_CAN" && ! -e $dir/device ]] || return 1
    ((fd == 0)) || [[ $(<"$dir/mtu") == "$FD_MTU" ]] || return 1
    [[ $(<"$dir/flags") =~ ^0x ]] && (($(<"$dir/flags") & 0x1))  # IFF_UP
}

pending=()
for name in "${names[@]}"; do
    dir=$sys_net/$name
    if [[ -d $dir ]]; then
        [[ $(<"$dir/type") == "$ARPHRD_CAN" ]] || die "$name exists and is not a CAN interface"
        [[ ! -e $dir/device ]] || die "$name is a real CAN controller, not a vcan: leaving it alone"
    fi
    is_ready "$name" || pending+=("$name")
done

if ((${#pending[@]})); then
    if [[ $(id -u) -ne 0 ]]; then
        die "must run as root to create or change ${pending[*]}: sudo $0 $*"
    fi
    command -v ip >/dev/null || die "the 'ip' command is missing (install iproute2)"
    if [[ ! -d /sys/module/vcan ]]; then
        command -v modprobe >/dev/null ||
            die "the vcan kernel module is not loaded and modprobe is missing (install kmod)"
        modprobe vcan 2>/dev/null || die "cannot load the vcan kernel module: this kernel lacks" \
            "it (Ubuntu: apt install linux-modules-extra-$(uname -r)), or this container may not" \
            "load modules (load it on the host: sudo modprobe vcan)"
    fi
fi

describe() {
    local mtu kind="classic CAN"
    mtu=$(<"$sys_net/$1/mtu")
    ((mtu == FD_MTU)) && kind="CAN FD"
    ((mtu == CLASSIC_MTU || mtu == FD_MTU)) || kind="MTU $mtu"
    echo "$1: up ($kind, mtu $mtu)$2"
}

for name in "${names[@]}"; do
    if is_ready "$name"; then
        describe "$name" ", already"
        continue
    fi
    dir=$sys_net/$name
    want=
    if [[ ! -d $dir ]]; then
        ip link add dev "$name" type vcan || die "cannot create $name (ip link add ... type vcan)"
        ((fd)) || want=$CLASSIC_MTU
    fi
    ((fd)) && want=$FD_MTU
    mtu=$(<"$dir/mtu")
    if [[ -n $want ]] && ((mtu != want)); then
        # The kernel refuses an MTU change on a running vcan (EBUSY): down, change, up.
        ip link set dev "$name" down
        ip link set dev "$name" mtu "$want" || die "cannot set MTU $want on $name"
        mtu=$want
    fi
    ip link set dev "$name" up || die "cannot raise $name"
    describe "$name" ""
done
