#!/usr/bin/perl

# Tests for the Debian package libnginx-mod-http-mtls: built by
# scripts/package (or the .deb named by TEST_MTLS_DEB), installed with
# dpkg -i, loaded by the stock /usr/sbin/nginx through
# /etc/nginx/modules-enabled/, serving requests, then purged.
#
# It installs and purges a package on this machine: root only.  A copy of
# the package installed before the test is purged too.

###############################################################################

use warnings;
use strict;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

# The module must come from the package, loaded by the distro's binary.
BEGIN { $ENV{TEST_NGINX_BINARY} = '/usr/sbin/nginx'; }

use lib 'lib';
use Test::Nginx;

###############################################################################

select STDERR; $| = 1;
select STDOUT; $| = 1;

plan(skip_all => 'installs a package: root only') if $> != 0;
plan(skip_all => 'no dpkg') unless -x '/usr/bin/dpkg';

my $t = Test::Nginx->new()->has(qw/http http_ssl/)->has_daemon('openssl')
	->plan(22);

my $pkg = 'libnginx-mod-http-mtls';
my $so = '/usr/lib/nginx/modules/ngx_http_mtls_module.so';
my $available = '/usr/share/nginx/modules-available/mod-http-mtls.conf';
my $enabled = '/etc/nginx/modules-enabled/50-mod-http-mtls.conf';

my $d = $t->testdir();
my $nginx = '/usr/sbin/nginx';

# The configuration loads the module only through the modules-enabled
# directory, as Debian's /etc/nginx/nginx.conf does; pid and error_log are
# passed by run() (no %%TEST_GLOBALS%%, which would load the module built in
# target/).

$t->write_file_expand('nginx.conf', <<'EOF');

include /etc/nginx/modules-enabled/*.conf;

user root;
daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    root %%TESTDIR%%;

    add_header X-Mtls "$mtls_decision $mtls_reason" always;

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate         pki/certs/localhost.crt;
        ssl_certificate_key     pki/certs/localhost.key;
        ssl_client_certificate  pki/ca.crt;
        ssl_verify_client       on;

        location / {
            mtls_allow_cn  alice;
        }
    }
}

EOF

$t->write_file('index.html', 'hello');

# The load_module line of modules-available is relative to the prefix: the
# distro's prefix, /usr/share/nginx, has this link.
symlink('/usr/share/nginx/modules', "$d/modules")
	or die "Can't link $d/modules: $!\n";

pki('init', '--no-passphrase');
pki('server', 'localhost', '--san', 'DNS:localhost,IP:127.0.0.1');
pki('client', 'alice');
pki('client', 'bob');

# A test that dies half-way leaves no package behind.
my $installed;
END { system("apt-get purge -y -qq $pkg >/dev/null 2>&1") if $installed; }

if (system("dpkg -s $pkg >/dev/null 2>&1") == 0) {
	system("apt-get purge -y -qq $pkg >/dev/null 2>&1") == 0
		or die "Can't purge the $pkg installed before the test\n";
}

###############################################################################

my $deb = $ENV{TEST_MTLS_DEB};
unless (defined $deb) {
	$deb = `../scripts/package 2>$d/package.log`;
	chomp $deb;
}
ok(-f $deb, 'package built') or diag($t->read_file('package.log'));

like(nginx_t(), qr/unknown directive "mtls_allow_cn"/,
	'not installed: module not loaded');

my $out = `dpkg -i $deb 2>&1`;
$installed = 1;
is($?, 0, 'dpkg -i') or diag($out);

my %files = map { $_ => 1 } split /\n/, `dpkg -L $pkg`;
ok($files{$so}, 'dpkg -L: module');
ok($files{$available}, 'dpkg -L: modules-available');
ok($files{"/usr/share/doc/$pkg/examples/admin-panel.conf"},
	'dpkg -L: example configurations');
is(read_file($available), "load_module modules/ngx_http_mtls_module.so;\n",
	'load_module line');
is(readlink($enabled), $available, 'enabled in modules-enabled');

# The ABI dependency is the one nginx-dev declares, and the installed nginx
# provides it.

my ($abi) = read_file('/usr/share/nginx/src/debian/libnginx-mod.abisubstvars')
	=~ /^nginx:abi=(\S+)$/m;
my $depends = `dpkg-query -W -f='\${Depends}' $pkg`;
my ($upstream) = `dpkg-query -W -f='\${Version}' nginx` =~ /^(?:\d+:)?([^-]+)-/;

like($depends, qr/(?:^|, )\Q$abi\E(?:,|$)/, "depends on $abi");
like($abi, qr/^nginx-abi-\Q$upstream\E-\d+$/, 'abi of the nginx version');
like(`dpkg-query -W -f='\${Provides}' nginx`, qr/(?:^|, )\Q$abi\E(?:,|$)/,
	'nginx provides it');
like($depends, qr/(?:^|, )libssl3 /, 'shared library dependencies');

like(nginx_t(), qr/test is successful/, 'nginx -t');

$t->run();

like(read_file("/proc/" . master_pid() . "/maps"), qr/\Q$so\E/,
	'nginx runs the packaged module');
like(get('alice'), qr/^HTTP\/1\.. 200 .*X-Mtls: allow .*hello$/s, 'allowed');
like(get('bob'), qr/^HTTP\/1\.. 403 .*X-Mtls: deny not_allowed/s, 'denied');

$t->stop();

$out = `apt-get purge -y $pkg 2>&1`;
is($?, 0, 'apt-get purge') or diag($out);
$installed = 0 unless $?;

ok(!-e $so, 'purged: module');
ok(!-e $available, 'purged: modules-available');
ok(!-l $enabled && !-l "$enabled.removed", 'purged: modules-enabled');
isnt(system("dpkg -s $pkg >/dev/null 2>&1"), 0, 'purged: not installed');
like(nginx_t(), qr/unknown directive "mtls_allow_cn"/,
	'purged: module not loaded');

###############################################################################

# scripts/mtls-pki, its output in pki.log.
sub pki {
	open my $stdout, '>&', \*STDOUT or die "Can't dup STDOUT: $!\n";
	open STDOUT, '>>', "$d/pki.log" or die "Can't open pki.log: $!\n";
	my $rc = system('../scripts/mtls-pki', '--dir', "$d/pki", @_);
	open STDOUT, '>&', $stdout or die "Can't restore STDOUT: $!\n";
	$rc == 0 or die "mtls-pki @_ failed\n";
}

sub nginx_t {
	my $command = "$nginx -t -p $d/ -c nginx.conf -e $d/nginx-t.log "
		. qq{-g "pid $d/nginx-t.pid; error_log $d/nginx-t.log;" 2>&1};
	return `$command`;
}

sub get {
	my ($name) = @_;
	return http_get('/', SSL => 1, PeerAddr => '127.0.0.1:' . port(8443),
		SSL_cert_file => "$d/pki/certs/$name.crt",
		SSL_key_file => "$d/pki/certs/$name.key");
}

sub master_pid {
	my $pid = read_file("$d/nginx.pid");
	chomp $pid;
	return $pid;
}

sub read_file {
	my ($path) = @_;
	open my $fh, '<', $path or return '';
	local $/;
	return scalar <$fh>;
}

###############################################################################
