#!/usr/bin/perl

# Tests for the Debian package libnginx-mod-http-mtls of each Debian release
# (debian-12, debian-13, debian-testing; see scripts/lib/target.sh): the
# package built for a release is installed into a fresh chroot of that
# release, unpacked from its bare debootstrap, next to the release's stock
# nginx from Debian's mirror; its files and dependencies are checked, the
# stock /usr/sbin/nginx loads it through /etc/nginx/modules-enabled/ and
# serves an allowed and a denied request, then it is purged.
#
# Which packages:
#   TEST_MTLS_DEB_DIR=DIR       the packages are DIR/NAME/*.deb, as
#                               scripts/package --target NAME leaves them in
#                               build/deb/NAME (so .ci/run builds each once);
#                               without it, the test builds them with
#                               scripts/package --target NAME
#   TEST_MTLS_PKG_TARGETS="..." the releases; by default all three with
#                               TEST_MTLS_DEB_DIR, else debian-12 only (a
#                               package build takes minutes)
#
# It makes chroots (target.sh): root only, and from the host, where
# scripts/package and debootstrap run.  Inside a target's userland
# (scripts/test --target NAME) it says so and tests nothing: that run's
# packages are tested by the host's run, in fresh chroots.

###############################################################################

use warnings;
use strict;

use Test::More;

# A relative TEST_MTLS_DEB_DIR is relative to where the test was started.
BEGIN {
	use Cwd qw/abs_path/;
	$ENV{TEST_MTLS_DEB_DIR} = abs_path($ENV{TEST_MTLS_DEB_DIR})
		if defined $ENV{TEST_MTLS_DEB_DIR};
}
BEGIN { use FindBin; chdir($FindBin::Bin); }

use File::Copy qw/copy/;
use File::Path qw/make_path remove_tree/;
use File::Temp qw/tempdir/;
use Time::HiRes qw/time/;
use Test::Nginx;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

my $inside = $ENV{MTLS_TARGET} // 'debian-12';
plan(skip_all => "in the userland of $inside: packages are tested from the host,"
	. ' each in a fresh chroot of its release') if $inside ne 'debian-12';
plan(skip_all => 'makes chroots and installs packages: root only') if $> != 0;

my $top = abs_path('..');
my %suite = ('debian-12' => 'bookworm', 'debian-13' => 'trixie',
	'debian-testing' => 'forky');

my $dir = $ENV{TEST_MTLS_DEB_DIR};
my @targets = split ' ', ($ENV{TEST_MTLS_PKG_TARGETS}
	// (defined $dir ? 'debian-12 debian-13 debian-testing' : 'debian-12'));
for (@targets) {
	die "TEST_MTLS_PKG_TARGETS: '$_' is not a Debian target\n"
		unless $suite{$_};
}

# No Test::Nginx instance: nginx runs in the chroots, not here (upstream's
# library would check an error log of its own that nginx never wrote).
my $d = tempdir('nginx-test-XXXXXXXXXX', TMPDIR => 1,
	CLEANUP => !$ENV{TEST_NGINX_LEAVE});
my $port = port(8443);

my $pkg = 'libnginx-mod-http-mtls';
my $so = '/usr/lib/nginx/modules/ngx_http_mtls_module.so';
my $available = '/usr/share/nginx/modules-available/mod-http-mtls.conf';
my $enabled = '/etc/nginx/modules-enabled/50-mod-http-mtls.conf';

# Everything the chroot needs lives in /opt/mtls there: the package, the
# PKI, a configuration that loads the module only as Debian's
# /etc/nginx/nginx.conf does (through modules-enabled), on a port of this
# test rather than the stock site's port 80.

write_file("$d/nginx.conf", <<"EOF");

include /etc/nginx/modules-enabled/*.conf;

user root;
pid /opt/mtls/nginx.pid;
error_log /opt/mtls/error.log info;

events {
}

http {
    access_log off;
    root /opt/mtls/html;

    add_header X-Mtls "\$mtls_decision \$mtls_reason" always;

    server {
        listen       127.0.0.1:$port ssl;
        server_name  localhost;

        ssl_certificate         /opt/mtls/pki/certs/localhost.crt;
        ssl_certificate_key     /opt/mtls/pki/certs/localhost.key;
        ssl_client_certificate  /opt/mtls/pki/ca.crt;
        ssl_verify_client       on;

        location / {
            mtls_allow_cn  alice;
        }
    }
}

EOF

# Client certificates made now, with openssl (through scripts/mtls-pki).
pki('init', '--no-passphrase');
pki('server', 'localhost', '--san', 'DNS:localhost,IP:127.0.0.1');
pki('client', 'alice');
pki('client', 'bob');

plan(tests => 24 * @targets);

make_path("$top/build");
for my $target (@targets) {
	my $started = time();
	test_release($target);
	diag(sprintf('%s: %.0f s', $target, time() - $started));
}

###############################################################################

sub test_release {
	my ($target) = @_;
	my $suite = $suite{$target};

	my $deb;
	if (defined $dir) {
		($deb) = sort glob("$dir/$target/${pkg}_*.deb");
	} else {
		$deb = `$top/scripts/package --target $target 2>$d/package-$target.log`;
		chomp $deb;
	}
	ok($deb && -f $deb, "$target: package built")
		or diag(defined $dir ? "no $dir/$target/${pkg}_*.deb"
			: read_file("$d/package-$target.log"));

	my $root = tempdir("pkg-$target-XXXXXX", DIR => "$top/build",
		CLEANUP => 1);
	# tempdir made it; target_fresh_root wants to make it.
	rmdir $root;
	my ($rc, $out) = shell('. "$1/scripts/lib/target.sh" &&'
		. ' target_fresh_root "$2" "$3"', $top, $suite, $root);
	is($rc, 0, "$target: fresh $suite root") or diag($out);

	make_path("$root/opt/mtls/html", "$root/usr/sbin");
	system('cp', '-a', "$d/pki", "$root/opt/mtls/") == 0
		or die "Can't copy the PKI\n";
	copy("$d/nginx.conf", "$root/opt/mtls/nginx.conf") or die "$!\n";
	write_file("$root/opt/mtls/html/index.html", 'hello');
	copy($deb, "$root/opt/mtls/$pkg.deb") if $deb && -f $deb;
	# Installing nginx must not start the release's own nginx on port 80.
	write_file("$root/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n");
	chmod 0755, "$root/usr/sbin/policy-rc.d";

	($rc, $out) = in_root($root, 'apt-get update -q &&'
		. ' apt-get install -y -q --no-install-recommends nginx curl');
	is($rc, 0, "$target: stock nginx installed") or diag(tail($out));

	like(nginx_t($root), qr/unknown directive "mtls_allow_cn"/,
		"$target: not installed: module not loaded");

	# apt resolves the package's dependencies from the mirror and what
	# is installed: nginx-abi-* is provided by the stock nginx only.
	($rc, $out) = in_root($root,
		"apt-get install -y -q --no-install-recommends /opt/mtls/$pkg.deb");
	is($rc, 0, "$target: apt-get install the package") or diag(tail($out));

	my %files = map { $_ => 1 } split /\n/,
		(in_root($root, "dpkg -L $pkg"))[1];
	ok($files{$so}, "$target: dpkg -L: module");
	ok($files{$available}, "$target: dpkg -L: modules-available");
	ok($files{"/usr/share/doc/$pkg/examples/admin-panel.conf"},
		"$target: dpkg -L: example configurations");
	is(read_file("$root$available"),
		"load_module modules/ngx_http_mtls_module.so;\n",
		"$target: load_module line");
	is(readlink("$root$enabled"), $available,
		"$target: enabled in modules-enabled");

	# The dependency on the nginx ABI is the one of the release's nginx,
	# which its stock nginx provides.
	my $depends = (in_root($root, "dpkg-query -W -f='\${Depends}' $pkg"))[1];
	my $version = (in_root($root, "dpkg-query -W -f='\${Version}' nginx"))[1];
	my $provides = (in_root($root, "dpkg-query -W -f='\${Provides}' nginx"))[1];
	my ($upstream) = $version =~ /^(?:\d+:)?([^-]+)-/;
	my ($abi) = $depends =~ /(?:^|, )(nginx-abi-[^, ]+)/;
	like($abi // '', qr/^nginx-abi-\Q$upstream\E-\d+$/,
		"$target: depends on the ABI of nginx $version");
	my $want = $abi // 'none';
	like($provides, qr/(?:^|, )\Q$want\E(?:,|$)/,
		"$target: the stock nginx provides it");
	like($depends, qr/(?:^|, )libssl3(?:t64)? /,
		"$target: shared library dependencies");

	like(nginx_t($root), qr/test is successful/, "$target: nginx -t");

	# nginx runs in the chroot's PID namespace, which ends with the
	# command: it is started, asked and stopped by one command.
	($rc, $out) = in_root($root, <<'EOF', $so);
nginx -c /opt/mtls/nginx.conf || exit 1
# The daemon writes its pid file after nginx has returned.
for i in $(seq 100); do [ -s /opt/mtls/nginx.pid ] && break; sleep 0.1; done
grep -q "$1" /proc/$(cat /opt/mtls/nginx.pid)/maps && echo 'MAPS: module'
for who in alice bob; do
	echo "== $who"
	curl -sS -i --cacert /opt/mtls/pki/ca.crt \
		--cert /opt/mtls/pki/certs/$who.crt \
		--key /opt/mtls/pki/certs/$who.key https://127.0.0.1:PORT/
	echo
done
nginx -c /opt/mtls/nginx.conf -s quit
EOF
	my ($alice, $bob) = $out =~ /^== alice\n(.*)^== bob\n(.*)/ms;
	like($out, qr/^MAPS: module$/m, "$target: nginx runs the packaged module");
	like($alice // '', qr/^HTTP\/1\.1 200 .*^X-Mtls: allow .*hello/ms,
		"$target: allowed") or diag($out);
	like($bob // '', qr/^HTTP\/1\.1 403 .*^X-Mtls: deny not_allowed/ms,
		"$target: denied");
	my $log = read_file("$root/opt/mtls/error.log");
	ok($log =~ /start worker process/ && $log !~ /\[(?:alert|emerg|crit)\]/,
		"$target: error log: workers started, no alerts") or diag($log);

	($rc, $out) = in_root($root, "apt-get purge -y -q $pkg");
	is($rc, 0, "$target: apt-get purge") or diag(tail($out));

	ok(!-e "$root$so", "$target: purged: module");
	ok(!-e "$root$available", "$target: purged: modules-available");
	ok(!-l "$root$enabled" && !-l "$root$enabled.removed",
		"$target: purged: modules-enabled");
	isnt((in_root($root, "dpkg -s $pkg"))[0], 0,
		"$target: purged: not installed");
	like(nginx_t($root), qr/unknown directive "mtls_allow_cn"/,
		"$target: purged: module not loaded");

	remove_tree($root);
}

# Runs a shell script in ROOT (target_chroot_run), PORT replaced by the
# test's port; returns its exit code and its output.
sub in_root {
	my ($root, $script, @args) = @_;
	$script =~ s/\bPORT\b/$port/g;
	return shell('. "$1/scripts/lib/target.sh" && root=$2 && shift 2 &&'
		. ' target_chroot_run "$root" env DEBIAN_FRONTEND=noninteractive'
		. ' sh -c "$@"', $top, $root, $script, '-', @args);
}

sub shell {
	my ($script, @args) = @_;
	open my $fh, '-|' or do {
		open STDERR, '>&', \*STDOUT;
		open STDIN, '<', '/dev/null';
		exec('bash', '-c', $script, '-', @args) or exit 127;
	};
	local $/;
	my $out = <$fh> // '';
	close $fh;
	return ($? >> 8, $out);
}

sub nginx_t {
	my ($root) = @_;
	return (in_root($root, 'nginx -t -c /opt/mtls/nginx.conf'))[1];
}

# scripts/mtls-pki, its output in pki.log.
sub pki {
	my ($rc, $out) = shell('"${@:2}" >>"$1" 2>&1', "$d/pki.log",
		"$top/scripts/mtls-pki", '--dir', "$d/pki", @_);
	$rc == 0 or die "mtls-pki @_ failed, see $d/pki.log\n";
}

sub tail {
	my @lines = split /\n/, $_[0];
	splice(@lines, 0, -20) if @lines > 20;
	return join("\n", @lines);
}

sub write_file {
	my ($path, $content) = @_;
	open my $fh, '>', $path or die "Can't write $path: $!\n";
	print $fh $content;
	close $fh;
}

sub read_file {
	my ($path) = @_;
	open my $fh, '<', $path or return '';
	local $/;
	return scalar <$fh>;
}

###############################################################################
