#!/usr/bin/perl

# scripts/lib/target.sh runs a target's commands in a chroot whose mounts
# (/proc, /dev, /dev/shm, /tmp, the work tree, cargo's and rustup's homes)
# live in a mount namespace of their own: none is left behind, whether the
# command succeeds, fails, fails while the mounts are made, or is
# interrupted (Ctrl-C) or killed, and no process of it outlives it.
#
# On the host, a small root (a shell and a few tools with their libraries)
# stands in for a Debian chroot, so that the test needs no debootstrap.
# Inside a target, the host's mount table cannot be seen: there the test
# checks that it runs in the namespace that target_run made.

use strict;
use warnings;

use Test::More;
use Cwd qw/abs_path/;
use File::Basename qw/dirname/;
use File::Copy qw/copy/;
use File::Path qw/make_path remove_tree/;
use File::Temp qw/tempdir/;
use POSIX qw/WNOHANG setpgid/;
use Time::HiRes qw/sleep time/;

my $top = abs_path(dirname(__FILE__) . '/..');
my $lib = "$top/scripts/lib/target.sh";
my $target = $ENV{MTLS_TARGET} // 'debian-12';

sub read_file {
	my ($path) = @_;
	open my $fh, '<', $path or die "$path: $!";
	local $/;
	return scalar <$fh>;
}

# Mount points of this namespace (octal escapes of /proc/mounts decoded).
sub mount_points {
	return map { (split ' ')[1] =~ s/\\([0-7]{3})/chr oct $1/ger }
		split /\n/, read_file('/proc/mounts');
}

if ($target ne 'debian-12') {
	# The host's /proc/mounts is out of sight in here, so "nothing left
	# behind" is checked by the host run; here: this is the namespace that
	# goes away with the command.
	plan(tests => 4);
	my %type = map { (split ' ')[1, 2] } split /\n/, read_file('/proc/mounts');
	is($type{'/dev/shm'}, 'tmpfs', "$target: a tmpfs of its own on /dev/shm");
	is($type{'/tmp'}, 'tmpfs', "$target: a tmpfs of its own on /tmp");
	ok(exists $type{$top}, "$target: the work tree is a mount of the namespace");
	like(read_file('/proc/1/cmdline'), qr/^bash\0-c\0/,
		"$target: in a PID namespace whose init is target_run's shell");
	exit 0;
}

plan(tests => 25);

make_path("$top/build");
my $base = tempdir('target-mounts-XXXXXX', DIR => "$top/build", CLEANUP => 1);

sub under_build { grep { m{^\Q$top\E/build(/|$)} } mount_points() }

# A root with sh and a few tools, laid out like a merged-/usr Debian.
sub small_root {
	my ($root, @skip) = @_;
	my %skip = map { $_ => 1 } @skip;
	make_path(map { "$root/$_" } grep { !$skip{$_} }
		qw{proc sys dev tmp usr/bin usr/lib usr/lib64});
	for (qw/bin lib lib64/) {
		symlink("usr/$_", "$root/$_") or die "symlink: $!";
	}
	for my $tool (qw/sh env cat sleep false/) {
		my ($path) = grep { -x } map { "$_/$tool" } qw{/usr/bin /bin};
		die "no $tool" unless $path;
		copy($path, "$root/usr/bin/$tool") or die "copy $path: $!";
		chmod 0755, "$root/usr/bin/$tool";
		for my $so (`ldd $path` =~ m{(/\S+)}g) {
			my $dest = $root . ($so =~ s{^/(lib|lib64)/}{/usr/$1/}r);
			next if -e $dest;
			make_path(dirname($dest));
			copy($so, $dest) or die "copy $so: $!";
			chmod 0755, $dest;
		}
	}
	return $root;
}

# Runs CMD in ROOT through the library; returns the exit status ($?).
sub chroot_run {
	my ($root, @cmd) = @_;
	system('bash', '-c', '. "$1" && cd "$2" && target_chroot_run "$3" "${@:4}"',
		'-', $lib, $top, $root, @cmd);
	return $?;
}

# Starts CMD in ROOT in a process group of its own with default signal
# dispositions (as a command typed at a terminal); returns the caller's pid.
sub chroot_start {
	my ($root, @cmd) = @_;
	my $pid = fork() // die "fork: $!";
	if ($pid == 0) {
		setpgid(0, 0);
		$SIG{$_} = 'DEFAULT' for qw/INT TERM QUIT HUP/;
		exec('bash', '-c',
			'. "$1" && cd "$2" && target_chroot_run "$3" "${@:4}"',
			'-', $lib, $top, $root, @cmd);
		die "exec: $!";
	}
	return $pid;
}

# Pids of the processes whose command line is exactly ARGS (the caller's
# own command line holds them too, as one argument).
sub pids_of {
	my $want = join('', map { "$_\0" } @_);
	my @pids;
	for my $dir (glob '/proc/[0-9]*') {
		open my $fh, '<', "$dir/cmdline" or next;
		my $cmd = do { local $/; <$fh> } // next;
		push @pids, $dir =~ s{.*/}{}r if $cmd eq $want;
	}
	return @pids;
}

sub wait_until {
	my ($cond, $seconds) = @_;
	my $end = time() + $seconds;
	while (time() < $end) {
		return 1 if $cond->();
		sleep 0.05;
	}
	return $cond->();
}

my $root = small_root("$base/root");
is_deeply([under_build()], [], 'no mount under build/ to begin with');

# The mounts are real, and made in the namespace only.
my $seen = "$base/seen";
is(chroot_run($root, 'sh', '-c', "cat /proc/mounts > $seen"), 0,
	'a command that succeeds returns 0');
my %inside = map { (split ' ')[1, 2] } split /\n/, read_file($seen);
is($inside{'/dev/shm'}, 'tmpfs', 'inside: a fresh tmpfs on /dev/shm');
is($inside{'/proc'}, 'proc', 'inside: /proc');
ok(exists $inside{$top}, 'inside: the work tree at its own path');
is_deeply([under_build()], [], 'after success: no mount under build/');

is(chroot_run($root, 'false') >> 8, 1, 'a failing command returns its status');
is_deeply([under_build()], [], 'after failure: no mount under build/');

# /tmp is mounted after /proc, /sys and /dev: those are made, then it fails.
my $broken = small_root("$base/broken", 'tmp');
open my $stderr, '>&', \*STDERR or die "dup: $!";
open STDERR, '>', "$base/stderr" or die "stderr: $!";
my $status = chroot_run($broken, 'true');
open STDERR, '>&', $stderr or die "dup: $!";
isnt($status, 0, 'a root without /tmp fails to set up');
like(read_file("$base/stderr"), qr{\Q$broken\E/tmp}, 'it says which mount failed');
is_deeply([under_build()], [], 'after a failed setup: no mount under build/');

# A command that leaves a process behind (as a daemonized nginx would).
my $case_number = 1;
for my $case (['SIGKILL to the caller', sub { kill 'KILL', $_[0] }],
	['SIGTERM to the caller', sub { kill 'TERM', $_[0] }],
	['Ctrl-C (SIGINT to the process group)', sub { kill 'INT', -$_[0] }])
{
	my ($what, $signal) = @$case;
	# An argument no other process on the machine has.
	my $mark = sprintf '%d.%d', 7000 + $$ % 1000, $case_number++;
	my $pid = chroot_start($root, 'sh', '-c', "sleep $mark & sleep 1$mark");
	ok(wait_until(sub { pids_of('sleep', $mark) && pids_of('sleep', "1$mark") }, 10),
		"$what: the command and its background process run");
	is_deeply([under_build()], [], "$what: while it runs, no mount visible");
	$signal->($pid);
	ok(wait_until(sub { waitpid($pid, WNOHANG) == $pid }, 10), "$what: the caller ends");
	ok(wait_until(sub { !pids_of('sleep', $mark) && !pids_of('sleep', "1$mark") }, 10),
		"$what: no process of the namespace survives");
}

is_deeply([under_build()], [], 'in the end: no mount under build/');
remove_tree($base);
ok(!-e $base, 'the chroots are removed as plain directories');
