#!/usr/bin/perl

# The benchmark driver behind scripts/bench: runs nginx on loopback in the
# configurations below, drives it with oha (TLS with a client certificate;
# HTTP/3 with oha's http3 build), and writes bench/RESULTS.md, or
# bench/RESULTS-NAME.md for another target, in whose userland scripts/bench
# runs it (target_run), with that target's nginx and module.  See
# scripts/bench for the options.
#
# Every configuration is a separate nginx, all started afresh for each round
# and idle but for the one being measured, so that each round measures all
# of them back to back (A B C ... A B C ...): the machine's noise falls on
# all alike, and the ratios are taken within a round.

use strict;
use warnings;

use FindBin;
use lib "$FindBin::Bin/../t/lib";

use Mtls;
use MtlsOcsp;

use File::Copy ();
use File::Path ();
use File::Temp ();
use Getopt::Long ();
use IO::Socket::INET;
use JSON::PP ();
use POSIX qw(:sys_wait_h);
use Time::HiRes ();

my $top = "$FindBin::Bin/..";

my %o = (
	oha => 'oha',
	oha_h3 => '',
	target => 'debian-12',
	nginx => '/usr/sbin/nginx',
	module => "$top/target/release/libngx_http_mtls_module.so",
	module_rev => '',
	rounds => 15,
	duration => 2,
	connections => 32,
	reload_seconds => 10,
	reload_rounds => 3,
	reload_rate => 2000,
	memory_rounds => 3,
	ocsp_rounds => 3,
	ocsp_seconds => 8,
	ocsp_rate => 1000,
	nginx_cpus => '1',
	load_cpus => '0',
	out => '',
	only => '',
	shapes => '',
);
# The options as given, for the results' header (without those that
# scripts/bench passes: the load generators' paths, the target's nginx and
# module, the module's commit).
my @given;
{
	my %internal = map { $_ => 1 } qw(--oha --oha-h3 --nginx --module
		--module-rev);
	for (my $i = 0; $i < @ARGV; $i++) {
		my ($opt) = $ARGV[$i] =~ /^(--[^=]+)/;
		if ($opt && $internal{$opt}) {
			$i++ unless $ARGV[$i] =~ /=/;
			next;
		}
		push @given, $ARGV[$i];
	}
}
Getopt::Long::GetOptions(\%o, 'oha=s', 'oha_h3|oha-h3=s', 'target=s',
	'nginx=s', 'module=s', 'module_rev|module-rev=s', 'rounds=i',
	'duration=f',
	'connections=i', 'reload_seconds|reload-seconds=i',
	'reload_rounds|reload-rounds=i', 'reload_rate|reload-rate=i',
	'memory_rounds|memory-rounds=i', 'ocsp_rounds|ocsp-rounds=i',
	'ocsp_seconds|ocsp-seconds=i', 'ocsp_rate|ocsp-rate=i',
	'nginx_cpus|nginx-cpus=s',
	'load_cpus|load-cpus=s', 'out=s', 'only=s', 'shapes=s', 'keep', 'quick')
	or die "bench: bad options (see scripts/bench --help)\n";
if ($o{quick}) {
	@o{qw(rounds duration reload_seconds reload_rounds memory_rounds
		ocsp_rounds ocsp_seconds)} = (2, 2, 4, 1, 1, 1, 6);
}
my $nginx = $o{nginx};
my $module = $o{module};

# HTTP/3: a shape where the target's nginx has it (by default there), and
# refused where it has not, rather than measuring nothing.
my $nginx_V = `$nginx -V 2>&1`;
my ($nginx_version) = $nginx_V =~ m{nginx version: (\S+)};
$nginx_version //= $nginx;
my ($built_with) = $nginx_V =~ /^(built with .*)$/m;
my $has_h3 = $nginx_V =~ /--with-http_v3_module/;
my $default_shapes = 'keepalive,handshake' . ($has_h3 ? ',h3' : '');
$o{shapes} ||= $default_shapes;
my %shape = map { $_ => 1 } split /,/, $o{shapes};
die "bench: --shapes takes keepalive, handshake and h3\n"
	if grep { !/^(keepalive|handshake|h3)$/ } keys %shape;
if ($shape{h3}) {
	die "bench: the h3 shape needs an nginx with HTTP/3, and $nginx_version"
		. " of $o{target} has none (built without --with-http_v3_module):"
		. " use --target debian-13, debian-testing or upstream\n"
		unless $has_h3;
	die "bench: the h3 shape needs oha built with its http3 feature"
		. " (--oha-h3; scripts/bench installs it)\n" unless $o{oha_h3};
}

# A run of some configurations or shapes does not replace the full results;
# each target has its own.
my $default_out = $o{target} eq 'debian-12'
	? "$top/bench/RESULTS.md" : "$top/bench/RESULTS-$o{target}.md";
my $partial = $o{only} || $o{shapes} ne $default_shapes;
$o{out} ||= $partial ? "$top/bench/RESULTS-partial.md" : $default_out;
my %only = map { $_ => 1 } split /,/, $o{only};
sub want { !%only || $only{$_[0]} }

my $started = time();
# A target's /tmp vanishes with its namespace: a kept directory goes to
# build/bench/.
my @tmp = (TMPDIR => 1);
if ($o{keep} && $o{target} ne 'debian-12') {
	File::Path::make_path("$top/build/bench");
	@tmp = (DIR => "$top/build/bench");
}
my $w = File::Temp::tempdir('mtls-bench.XXXXXX', @tmp,
	CLEANUP => !$o{keep});
my %running;    # master pid => name, stopped at exit whatever happens

END { stop($_) for keys %running }
$SIG{INT} = $SIG{TERM} = sub { exit 1 };

sub say_ { print STDERR "bench: @_\n" }

###############################################################################
# Certificates, names and revocation data

my $pki = "$w/pki";
sub mtls_pki { Mtls::run_cmd("$top/scripts/mtls-pki", '--dir', $pki, @_) }

say_("certificates in $pki");
mtls_pki('init', '--no-passphrase', '--cn', 'Bench CA');
mtls_pki('server', 'localhost', '--san', 'DNS:localhost,IP:127.0.0.1');

# The client's CN is near the end of the 10,000 names, its SPIFFE ID under
# one of the 1,000 patterns; "intruder" is valid but in neither list;
# "revoked" is in the large CRL.
my $names = 10_000;
my $client_cn = sprintf('bench-client-%05d', $names - 10);
my $spiffe = 'spiffe://bench.example.org/ns/team-0990/sa/client';
mtls_pki('client', $client_cn, '--spiffe', $spiffe);
mtls_pki('client', 'intruder');
mtls_pki('client', 'revoked');

# For the OCSP runs: "revoked" is revoked in the CA's database, which
# "openssl ocsp" answers from; each waiter's look-up is new to the cache.
my @waiters = map { "waiter-$_" } 1 .. 8;
mtls_pki('client', $_) for @waiters;
mtls_pki('revoke', 'revoked');

my %cert = map { $_ => ["$pki/certs/$_.crt", "$pki/certs/$_.key"] }
	($client_cn, 'intruder', 'revoked', @waiters);
my %ocsp_req;
for my $who (@waiters) {
	Mtls::run_cmd('openssl', 'ocsp', '-issuer', "$pki/ca.crt", '-cert',
		"$pki/certs/$who.crt", '-no_nonce', '-reqout', "$w/$who.ocsp-req");
	$ocsp_req{$who} = Mtls::slurp("$w/$who.ocsp-req");
}
my ($ccert, $ckey) = @{$cert{$client_cn}};
my $revoked_serial = Mtls::serial_hex("$pki/certs/revoked.crt");

Mtls::spew("$w/index.html", "hello from the benchmark\n");

my @cn_lines;
for (my $i = 0; $i < $names; $i += 100) {
	push @cn_lines, 'mtls_allow_cn '
		. join(' ', map { sprintf('bench-client-%05d', $_) } $i .. $i + 99)
		. ";\n";
}
Mtls::spew("$w/allow-cn.conf", join('', @cn_lines));
Mtls::spew("$w/allow-spiffe.conf", join('', map {
	sprintf("mtls_allow_spiffe spiffe://bench.example.org/ns/team-%04d/*;\n",
		$_)
} 0 .. 999));

# The map/if approach with the same names, one regex each, as in
# "if ($ssl_client_s_dn !~ ...)" setups; the client's DN as nginx prints it.
my $map_entries = join('', map {
	sprintf("    \"~^CN=bench-client-%05d(,|\$)\" 0;\n", $_)
} 0 .. $names - 1);
Mtls::spew("$w/map-10k.conf", "map \$ssl_client_s_dn \$bench_denied {\n"
	. "    default 1;\n$map_entries}\n");
Mtls::spew("$w/map-1.conf", "map \$ssl_client_s_dn \$bench_denied {\n"
	. "    default 1;\n    \"~^CN=$client_cn(,|\$)\" 0;\n}\n");

my $deny_entries = 100_000;
{
	open my $fh, '>', "$w/deny.txt" or die "$w/deny.txt: $!\n";
	print $fh "# benchmark: $deny_entries serials none of the clients has\n";
	printf $fh "7D%014X\n", $_ for 1 .. $deny_entries;
	close $fh;
}

# Enough CRLs, numbered 1, 2, ..., for one reload run: each run starts from
# number 1 in a fresh nginx and moves the next one into place every second.
my $crl_entries = 1_000_000;
my $crl_files = want('reload') ? $o{reload_seconds} + 1 : 1;
my $t0 = Time::HiRes::time();
for my $n (1 .. $crl_files) {
	Mtls::PKI->big_crl("$w/crl.$n", ca_cert => "$pki/ca.crt",
		ca_key => "$pki/ca/root/ca.key", count => $crl_entries,
		revoke_serials => [ $revoked_serial ], number => $n, der => 1);
}
my $crl_gen = (Time::HiRes::time() - $t0) / $crl_files;
say_(sprintf('%d CRLs of %d entries, %.1f s each', $crl_files,
	$crl_entries + 1, $crl_gen));

###############################################################################
# OCSP responders: "openssl ocsp" on the CA's database, and in front of it
# a proxy that answers after 2 s

my ($ocsp_port, $slow_port) = (free_port(), free_port());
my @daemons;
END { kill 'TERM', @daemons if @daemons; waitpid($_, 0) for @daemons }

if (want('ocsp') || want('ocsp-wait')) {
	my $pid = fork // die "fork: $!\n";
	if (!$pid) {
		open STDOUT, '>', "$w/ocsp.log";
		open STDERR, '>&', \*STDOUT;
		# The helpers run on the load generator's CPUs, as oha does, so
		# that nginx's CPU is nginx's alone.
		{ exec 'taskset', '-c', $o{load_cpus}, 'openssl', 'ocsp',
			'-index', "$pki/ca/root/index.txt",
			'-port', $ocsp_port, '-rsigner', "$pki/ca.crt",
			'-rkey', "$pki/ca/root/ca.key", '-CA', "$pki/ca.crt",
			'-nmin', 60, '-ignore_err' };
		POSIX::_exit(1);
	}
	push @daemons, $pid;
	# Not with a test connection: "openssl ocsp" waits for ever for the
	# request of a connection that closed without one.
	for (1 .. 100) {
		last if -s "$w/ocsp.log"
			&& Mtls::slurp("$w/ocsp.log") =~ /waiting for OCSP client/;
		Time::HiRes::sleep(0.05);
	}
	$pid = fork // die "fork: $!\n";
	if (!$pid) {
		system("taskset -cp $o{load_cpus} $$ >/dev/null") == 0
			or die "taskset: $?\n";
		# In one process, which costs the load generator's CPU as little
		# as it can: in a deployment, the responder runs elsewhere.
		MtlsOcsp::delaying_proxy($slow_port, $ocsp_port, 2);
		POSIX::_exit(0);
	}
	push @daemons, $pid;
}


###############################################################################
# Configurations

my %configs = (
	baseline => {
		label => '1. plain nginx, no module',
	},
	# Only with --only: what loading the module costs where it is off.
	loaded => {
		label => '1b. module loaded, mtls off',
		module => 1,
		extra => 1,
	},
	'map-1' => {
		label => '2a. map/if, 1 regex',
		http => "include $w/map-1.conf;",
		server => 'if ($bench_denied) { return 403; }',
		deny => 'intruder',
	},
	'map-10k' => {
		label => '2b. map/if, 10,000 regexes',
		http => "include $w/map-10k.conf;",
		server => 'if ($bench_denied) { return 403; }',
		deny => 'intruder',
	},
	'mtls-on' => {
		label => '3. module, mtls on',
		module => 1,
		server => 'mtls on;',
	},
	'names' => {
		label => '4. module, 10,000 CNs + 1,000 SPIFFE',
		module => 1,
		server => "include $w/allow-cn.conf; include $w/allow-spiffe.conf;",
		deny => 'intruder',
	},
	'revocation' => {
		label => '5. module, 1M-entry CRL + 100k deny list',
		module => 1,
		server => "mtls_crl $w/crl/ca.crl; mtls_deny_list $w/deny.txt;",
		deny => 'revoked',
		crl => 1,
	},
	# The same CRL fetched over HTTP from a server on loopback, asked
	# again every 5 s (a 304 each time); the copy kept in $w/cache.
	'url-crl' => {
		label => '5b. module, 1M-entry CRL from a URL + 100k deny list',
		module => 1,
		http => "mtls_cache_dir $w/cache;",
		server => sub {
			'mtls_crl http://127.0.0.1:' . crl_server()
				. '/ca.crl interval=5s max_size=256m;'
				. " mtls_deny_list $w/deny.txt;"
		},
		deny => 'revoked',
		crl => 1,
	},
	# Only with --only: the client's certificate passed on to an upstream
	# (a second server of the same nginx, over kept-alive connections),
	# the nginx way and the RFC 9440 way.
	'fwd-pem' => {
		label => '7a. proxy_pass with $ssl_client_escaped_cert, no module',
		extra => 1,
		proxy => 'proxy_set_header X-SSL-Client-Cert $ssl_client_escaped_cert;',
	},
	'fwd-rfc9440' => {
		label => '7b. proxy_pass with Client-Cert and Client-Cert-Chain, mtls on',
		module => 1,
		extra => 1,
		server => 'mtls on;',
		proxy => 'proxy_set_header Client-Cert $mtls_client_cert;'
			. ' proxy_set_header Client-Cert-Chain $mtls_client_cert_chain;',
	},
	'ocsp' => {
		label => '6. module, OCSP leaf, cached answer',
		module => 1,
		http => 'mtls_ocsp_cache refresh=5m;',
		server => "mtls_ocsp leaf; mtls_ocsp_responder http://127.0.0.1:$ocsp_port/;",
		deny => 'revoked',
	},
	# The same answers, where a new certificate's look-up takes 2 s.
	'ocsp-slow' => {
		label => 'module, OCSP leaf, responder answering in 2 s',
		module => 1,
		http => 'mtls_ocsp_cache refresh=5m;',
		server => 'mtls_ocsp leaf; mtls_ocsp_timeout 5s;'
			. " mtls_ocsp_responder http://127.0.0.1:$slow_port/;",
	},
	'crl-only' => {
		label => 'module, 1M-entry CRL',
		module => 1,
		server => "mtls_crl $w/crl/ca.crl;",
		crl => 1,
	},
);
my @throughput = grep { $only{$_} || (!%only && !$configs{$_}{extra}) }
	qw(baseline loaded map-1 map-10k mtls-on names revocation url-crl ocsp
		fwd-pem fwd-rfc9440);

# The HTTP server of the URL-fed CRL: Python's, serving $w/crl, with
# Last-Modified and 304 answers; started once, stopped at exit.
my ($crl_server_pid, $crl_server_port);
sub crl_server {
	return $crl_server_port if $crl_server_pid;
	mkdir "$w/crl";
	$crl_server_port = free_port();
	$crl_server_pid = fork // die "fork: $!\n";
	if (!$crl_server_pid) {
		open STDIN, '<', '/dev/null';
		open STDERR, '>', '/dev/null';
		open STDOUT, '>', '/dev/null';
		{ exec 'python3', '-m', 'http.server', '--bind', '127.0.0.1',
			'--directory', "$w/crl", $crl_server_port };
		POSIX::_exit(1);
	}
	for (1 .. 100) {
		last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$crl_server_port");
		Time::HiRes::sleep(0.05);
	}
	return $crl_server_port;
}
END { kill 'TERM', $crl_server_pid if $crl_server_pid }

# pcre_jit gives the regexes their best chance.
sub nginx_conf {
	my ($c, %a) = @_;
	my $port = $a{port};
	my $load = $c->{module} ? "load_module $module;" : '';
	my $http = $c->{http} // '';
	my $server = $c->{server} // '';
	$server = $server->() if ref $server;
	my $workers = $a{workers} // 1;
	my ($upstream, $content) = ('', "root $w;");
	# HTTP/3 on the same port, over UDP, where the h3 shape runs: QUIC's
	# handshake is always TLS 1.3, with the same certificates. HTTP/3 takes
	# keepalive_requests and keepalive_timeout from the server level (as
	# the QUIC idle timeout), HTTP/1.1 from the request's location, where
	# they stay nginx's defaults: oha 1.16's HTTP/3 client fails the request
	# it sends on a connection that nginx closes after 1,000 requests, and
	# waits out the idle timeout after its last request.
	my ($quic, $h1_keepalive) = ('', '');
	if ($shape{h3}) {
		$quic = "listen 127.0.0.1:$port quic reuseport;"
			. ' keepalive_requests 1000000; keepalive_timeout 1s;';
		$h1_keepalive = 'keepalive_requests 1000; keepalive_timeout 75s;';
	}
	if (defined $c->{proxy}) {
		my $up = $a{upstream_port};
		$upstream = "upstream bench_upstream { server 127.0.0.1:$up;"
			. " keepalive 16; }\n"
			. "    server { listen 127.0.0.1:$up; location / { root $w; } }";
		$content = 'proxy_pass http://bench_upstream; proxy_http_version 1.1;'
			. " proxy_set_header Connection \"\"; $c->{proxy}";
	}
	return <<"EOF";
user root;
daemon off;
worker_processes $workers;
pcre_jit on;
pid nginx.pid;
error_log error.log warn;
$load

events {
    worker_connections 4096;
}

http {
    access_log off;
    default_type text/html;
    $http
    $upstream

    server {
        listen 127.0.0.1:$port ssl reuseport;
        $quic
        ssl_certificate $pki/certs/localhost.crt;
        ssl_certificate_key $pki/certs/localhost.key;
        ssl_client_certificate $pki/ca.crt;
        ssl_verify_client on;
        # Every new connection is a full handshake.
        ssl_session_cache off;
        ssl_session_tickets off;

        $server

        location = /index.html {
            $h1_keepalive
            $content
        }
        location = /mtls-status {
            ${\ ($c->{module} ? 'mtls off; mtls_status;' : 'return 404;') }
        }
    }
}
EOF
}

sub free_port {
	my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => 0,
		Proto => 'tcp', Listen => 1) or die "no free port: $!\n";
	return $s->sockport();
}

# Starts nginx for configuration $name in its own directory; returns
# { pid, port, dir }.
sub start {
	my ($name, %a) = @_;
	my $c = $configs{$name};
	my $dir = "$w/run-$name";
	File::Path::rmtree($dir);
	mkdir $dir or die "$dir: $!\n";
	if ($c->{crl}) {
		mkdir "$w/crl";
		File::Copy::copy("$w/crl.1", "$w/crl/ca.crl.tmp") or die "copy: $!\n";
		rename "$w/crl/ca.crl.tmp", "$w/crl/ca.crl" or die "rename: $!\n";
	}
	my $port = free_port();
	Mtls::spew("$dir/nginx.conf", nginx_conf($c, port => $port,
		upstream_port => free_port(), %a));
	my @cpus = ('taskset', '-c', $a{cpus} // $o{nginx_cpus});
	my $pid = fork // die "fork: $!\n";
	if (!$pid) {
		open STDIN, '<', '/dev/null';
		# Its own process group, where its revocation loader is found.
		POSIX::setpgid(0, 0);
		{ exec @cpus, $nginx, '-p', "$dir/", '-c', "$dir/nginx.conf",
			'-e', "$dir/error.log" };
		print STDERR "exec $nginx: $!\n";
		POSIX::_exit(1);
	}
	$running{$pid} = $name;
	my $deadline = time() + 120;
	while (1) {
		if (waitpid($pid, WNOHANG) == $pid) {
			delete $running{$pid};
			die "nginx ($name) exited: " . Mtls::slurp("$dir/error.log");
		}
		last if IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port");
		die "nginx ($name) did not start\n" if time() > $deadline;
		Time::HiRes::sleep(0.05);
	}
	# nginx listens before its workers are up: wait for a response.
	for (1 .. 200) {
		last if get($port, $client_cn) ne '000';
		Time::HiRes::sleep(0.05);
	}
	my ($worker) = grep { $_ != $pid } family($pid);
	return { name => $name, pid => $pid, port => $port, dir => $dir,
		worker => $worker };
}

my @incidents;    # error log lines at crit and above, from every server

# Stops nginx $pid (or a start() result), keeping its error log's lines at
# crit and above: a worker that crashed and was replaced mid-run shows as
# "exited on signal".
sub stop {
	my ($pid) = @_;
	$pid = $pid->{pid} if ref $pid;
	my $name = delete $running{$pid} or return;
	kill 'TERM', $pid;
	waitpid($pid, 0);
	open my $fh, '<', "$w/run-$name/error.log" or return;
	for (grep { /\[(crit|alert|emerg)\]/ } <$fh>) {
		chomp;
		say_("$name: $_");
		push @incidents, "$name: $_";
	}
}

# The status code for a GET as $who (curl: a client independent of oha).
# With $h3, over HTTP/3 only (curl of a target whose nginx has it).
sub get {
	my ($port, $who, $h3) = @_;
	my ($crt, $key) = @{$cert{$who}};
	my $http3 = $h3 ? '--http3-only' : '';
	return `curl -s $http3 -o /dev/null -w '%{http_code}' --max-time 5 --cacert $pki/ca.crt --cert $crt --key $key https://localhost:$port/index.html`;
}

sub status {
	my ($port) = @_;
	my $json = `curl -sS --max-time 5 --cacert $pki/ca.crt --cert $ccert --key $ckey https://localhost:$port/mtls-status`;
	return JSON::PP::decode_json($json);
}

# Checks that the configuration does what it claims: the client passes
# and, where rules are set, another certificate does not.
sub check {
	my ($n) = @_;
	my $c = $configs{$n->{name}};
	for my $h3 ($shape{h3} ? (0, 1) : (0)) {
		my $over = $h3 ? ' over HTTP/3' : '';
		my $code = get($n->{port}, $client_cn, $h3);
		die "$n->{name}: the client got $code$over, not 200\n"
			unless $code eq '200';
		if (my $who = $c->{deny}) {
			$code = get($n->{port}, $who, $h3);
			die "$n->{name}: $who got $code$over, not 403\n"
				unless $code eq '403';
		}
	}
}

###############################################################################
# Load

# The CPU time a process's main thread has used, in ns: with the machine
# shared, the CPU time per request is a steadier cost than the throughput,
# which depends on the share of the CPU nginx gets.
sub cpu_ns {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/schedstat" or return 0;
	my ($ns) = split ' ', scalar <$fh>;
	return $ns;
}

# The revocation loaders of nginx $n, found in its process group (not
# by Mtls::loaders, which needs a table in /dev/shm).
sub loaders_of {
	my ($n) = @_;
	return grep {
		my $st = -r "/proc/$_/stat" ? Mtls::slurp("/proc/$_/stat") : '';
		((split ' ', substr($st, rindex($st, ')') + 1))[2] // 0) == $n->{pid}
			&& Mtls::cmdline($_) =~ /mtls revocation loader/
	} map { m{/(\d+)$} } glob '/proc/[0-9]*';
}

# The CPU time of all of a process's threads, in ns.
sub tasks_cpu_ns {
	my ($pid) = @_;
	my $ns = 0;
	$ns += cpu_ns($_) for map { m{/(\d+)$} } glob "/proc/$pid/task/*";
	return $ns;
}

# One oha run against nginx $n; returns requests per second, latencies
# (ms), failures (errors and any status but 200, with their kinds) and the
# worker's CPU time per response (us).
sub oha {
	my ($n, %a) = @_;
	my $port = $n->{port};
	my @cmd = ('taskset', '-c', $o{load_cpus},
		$a{h3} ? ($o{oha_h3}, '--http-version', '3') : $o{oha}, '--no-tui',
		'--output-format', 'json', '--insecure', '--cert', $ccert,
		'--key', $ckey, '-c', $a{connections} // $o{connections},
		'-z', int(1000 * ($a{duration} // $o{duration})) . 'ms', '-w');
	push @cmd, '--disable-keepalive' if $a{handshake};
	push @cmd, '-q', $a{rate}, '--latency-correction' if $a{rate};
	push @cmd, "https://127.0.0.1:$port/index.html";
	my $cpu = cpu_ns($n->{worker});
	open my $fh, '-|', @cmd or die "oha: $!\n";
	my $out = do { local $/; <$fh> };
	close $fh or die "oha failed ($?): @cmd\n";
	$cpu = cpu_ns($n->{worker}) - $cpu;
	my $j = JSON::PP::decode_json($out);
	my $codes = $j->{statusCodeDistribution} // {};
	my %kinds = %{$j->{errorDistribution} // {}};
	$kinds{"status $_"} = $codes->{$_} for grep { $_ ne '200' } keys %$codes;
	my $bad = 0;
	$bad += $_ for values %kinds;
	my $pct = $j->{latencyPercentiles} // {};
	# Per response: a connection that failed (say, no local port free)
	# may never have reached nginx, and would dilute its cost.
	my $responses = 0;
	$responses += $_ for values %$codes;
	return {
		# Over HTTP/3, oha's total time includes the idle timeout it
		# waits out at the end.
		rps => $a{h3} ? $responses / ($a{duration} // $o{duration})
			: $j->{summary}{requestsPerSec},
		cpu => $responses ? $cpu / 1000 / $responses : 0,
		failed => $bad,
		errors => \%kinds,
		p50 => ($pct->{p50} // 0) * 1000,
		p99 => ($pct->{p99} // 0) * 1000,
		max => ($j->{summary}{slowest} // 0) * 1000,
	};
}

# A result's failures by kind, as "N kind; ...".
sub kinds {
	my ($r) = @_;
	my $e = $r->{errors};
	return join('; ', map { "$e->{$_} $_" } sort keys %$e);
}

# The rounds of $rs that failed requests, as "$label, round N: kinds".
sub failures {
	my ($label, $rs) = @_;
	return map { $rs->[$_]{failed}
		? "$label, round " . ($_ + 1) . ': ' . kinds($rs->[$_]) : () } 0 .. $#$rs;
}

sub median {
	my @s = sort { $a <=> $b } @_;
	return undef unless @s;
	return @s % 2 ? $s[$#s / 2] : ($s[@s / 2 - 1] + $s[@s / 2]) / 2;
}

# The median (min-max) over the rounds of $a's $key over $b's, each round
# with its own.
sub ratio {
	my ($a, $b, $key) = @_;
	my @q = mmm(map { $b->[$_]{$key} ? $a->[$_]{$key} / $b->[$_]{$key} : 0 }
		0 .. $#$a);
	return sprintf('%.3f (%.3f-%.3f)', $q[1], $q[0], $q[2]);
}

# The same for the difference $a's $key minus $b's.
sub difference {
	my ($a, $b, $key) = @_;
	my @q = mmm(map { $a->[$_]{$key} - $b->[$_]{$key} } 0 .. $#$a);
	return sprintf('%+.1f (%+.1f to %+.1f)', @q[1, 0, 2]);
}

sub mmm {
	my @s = sort { $a <=> $b } @_;
	return ($s[0], median(@s), $s[-1]);
}

###############################################################################
# Throughput: keep-alive and a handshake per request, interleaved

my %tp;    # shape => name => [ result per round ]
my @shapes = grep { $shape{$_->[0]} } (
	[ 'keepalive', 'keep-alive', 0, 0 ],
	[ 'handshake', 'new TLS handshake per request', 1, 0 ],
	[ 'h3', 'HTTP/3 (QUIC), keep-alive', 0, 1 ],
);
# Each round starts every server afresh: two nginx instances of one build
# can differ by several microseconds per handshake for the whole of their
# life (where the heap, the libraries and the tables land in memory), so
# servers kept for all the rounds would give their luck to every round.
if (@throughput) {
	for my $round (1 .. $o{rounds}) {
		# Each round starts with the next configuration, so that none
		# always runs first or right after a given other.
		my $k = ($round - 1) % @throughput;
		my @order = @throughput[$k .. $#throughput, 0 .. $k - 1];
		my %n;
		for my $name (@order) {
			say_("round $round: starting $name") if $round == 1;
			$n{$name} = start($name);
			check($n{$name});
		}
		for my $s (@shapes) {
			my ($shape, undef, $hs, $h3) = @$s;
			# Warm-up of each server's worker and of the CPU caches.
			oha($n{$_}, handshake => $hs, h3 => $h3, duration => 0.5)
				for @order;
			for my $name (@order) {
				my $r = oha($n{$name}, handshake => $hs, h3 => $h3);
				push @{$tp{$shape}{$name}}, $r;
				say_(sprintf('round %d %-9s %-10s %8.0f req/s %7.1f us/req%s',
					$round, $shape, $name, $r->{rps}, $r->{cpu},
					$r->{failed} ? " FAILED $r->{failed}: " . kinds($r) : ''));
			}
		}
		stop($n{$_}) for @order;
	}
}

###############################################################################
# Live reload under load: the CRL replaced every second, against the same
# run without replacements

my %reload;    # mode => [ result per round ]
if (want('reload')) {
	for my $round (1 .. $o{reload_rounds}) {
		for my $mode (qw(still rewrite)) {
			my $n = start('revocation');
			check($n);
			my $before = status($n->{port})->{sources};
			my $writer;
			if ($mode eq 'rewrite') {
				$writer = fork // die "fork: $!\n";
				if (!$writer) {
					my $start = Time::HiRes::time();
					for my $i (2 .. $o{reload_seconds}) {
						my $wait = $start + $i - 1 - Time::HiRes::time();
						Time::HiRes::sleep($wait) if $wait > 0;
						File::Copy::copy("$w/crl.$i", "$w/crl/ca.crl.tmp")
							or die "copy: $!\n";
						rename "$w/crl/ca.crl.tmp", "$w/crl/ca.crl"
							or die "rename: $!\n";
					}
					POSIX::_exit(0);
				}
			}
			my $r = oha($n, rate => $o{reload_rate},
				connections => 8, duration => $o{reload_seconds});
			waitpid($writer, 0) if $writer;
			# The last file may still be loading.
			my $after;
			for (1 .. 50) {
				$after = status($n->{port})->{sources};
				my ($crl) = grep { $_->{kind} eq 'crl' } @$after;
				last if $mode eq 'still'
					|| ($crl->{crls}[0]{number} // 0) == $o{reload_seconds};
				Time::HiRes::sleep(0.1);
			}
			my ($crl) = grep { $_->{kind} eq 'crl' } @$after;
			my ($crl0) = grep { $_->{kind} eq 'crl' } @$before;
			$r->{reloads} = $crl->{generation} - $crl0->{generation};
			$r->{number} = $crl->{crls}[0]{number};
			$r->{last_error} = $crl->{last_error};
			$r->{revoked_ok} = get($n->{port}, 'revoked') eq '403';
			push @{$reload{$mode}}, $r;
			say_(sprintf('reload round %d %-7s p50 %.2f p99 %.2f max %.2f ms,'
				. ' %d failed%s, %d reloads', $round, $mode, @$r{qw(p50 p99 max)},
				$r->{failed}, $r->{failed} ? ' (' . kinds($r) . ')' : '',
				$r->{reloads}));
			stop($n);
		}
	}
}

###############################################################################
# OCSP: the latency of other connections while one client's look-up waits
# 2 s on a slow responder, against the same run without it

my %owait;    # mode => [ result per round ]
if (want('ocsp-wait')) {
	my $next = 0;
	for my $round (1 .. $o{ocsp_rounds}) {
		# Each round starts with the next mode.
		my @modes = qw(quiet responder waiting);
		push @modes, splice(@modes, 0, ($round - 1) % @modes);
		for my $mode (@modes) {
			# check() waits 2 s for the client's first answer.
			my $n = start('ocsp-slow');
			check($n);
			# The same client in every mode, from 0.5 s into the run to
			# its end, one request at a time: waiting, a certificate new
			# to the cache each time (the look-up takes 2 s); quiet, the
			# client's certificate, whose answer is cached, at the same
			# pace; responder, as quiet, while it sends the proxy the
			# look-ups the waiting run makes nginx send. So the runs
			# differ by the waits alone, not by the client's handshakes
			# or its curl processes, and responder tells the proxy's and
			# "openssl ocsp"'s share from nginx's.
			my $waiter = fork // die "fork: $!\n";
			if (!$waiter) {
				Time::HiRes::sleep(0.5);
				my @times;
				my $end = Time::HiRes::time() + $o{ocsp_seconds} - 2.5;
				while (Time::HiRes::time() < $end) {
					my $who = $mode eq 'waiting'
						? $waiters[$next++ % @waiters] : $client_cn;
					my ($crt, $key) = @{$cert{$who}};
					my $start = Time::HiRes::time();
					my $s;
					if ($mode eq 'responder') {
						my $der = $ocsp_req{$waiters[$next++ % @waiters]};
						$s = IO::Socket::INET->new("127.0.0.1:$slow_port")
							or die "slow proxy: $!\n";
						MtlsOcsp::post($s, $der);
					}
					push @times, `taskset -c $o{load_cpus} curl -s -o /dev/null -w '%{http_code} %{time_total}' --max-time 10 --cacert $pki/ca.crt --cert $crt --key $key https://localhost:$n->{port}/index.html`;
					if ($s) {
						local $/;
						my $answer = <$s>;
					}
					my $left = 2.0 - (Time::HiRes::time() - $start);
					Time::HiRes::sleep($left) if $mode ne 'waiting' && $left > 0;
				}
				Mtls::spew("$n->{dir}/waiters", join("\n", @times));
				POSIX::_exit(0);
			}
			my @loader = loaders_of($n);
			my $lcpu = 0;
			$lcpu -= tasks_cpu_ns($_) for @loader;
			my $r = oha($n, rate => $o{ocsp_rate}, connections => 8,
				duration => $o{ocsp_seconds});
			$lcpu += tasks_cpu_ns($_) for @loader;
			$r->{loader_ms} = $lcpu / 1e6;
			{
				waitpid($waiter, 0);
				my @w = map { [ split ' ' ] }
					split /\n/, Mtls::slurp("$n->{dir}/waiters");
				$r->{waits} = [ map { $_->[1] } @w ];
				$r->{waits_ok} = !grep { $_->[0] ne '200' } @w;
			}
			push @{$owait{$mode}}, $r;
			say_(sprintf('ocsp-wait round %d %-7s p50 %.2f p99 %.2f max %.2f'
				. ' ms, worker %.1f us/req, loader %.1f ms, %d failed%s', $round, $mode, @$r{qw(p50 p99 max cpu loader_ms)},
				$r->{failed}, $r->{waits} ? ', second client ' . join(', ',
				map { sprintf('%.2f s', $_) } @{$r->{waits}}) : ''));
			stop($n);
		}
	}
}

###############################################################################
# Memory: PSS over master and workers

sub pss_kb {
	my ($pid) = @_;
	open my $fh, '<', "/proc/$pid/smaps_rollup" or return 0;
	while (<$fh>) {
		return $1 if /^Pss:\s+(\d+) kB/;
	}
	return 0;
}

sub family {
	my ($master) = @_;
	my @pids = ($master);
	for my $stat (glob '/proc/[0-9]*/stat') {
		open my $fh, '<', $stat or next;
		my $line = <$fh> // next;
		# pid (comm) state ppid: comm may hold spaces
		push @pids, $1 if $line =~ /^(\d+) \(.*\) \S+ (\d+)/ && $2 == $master;
	}
	return @pids;
}

my %mem;    # "name/workers" => [ { pss, shm, processes } per round ]
if (want('memory')) {
	for my $round (1 .. $o{memory_rounds}) {
		for my $workers (1, 4) {
			for my $name (qw(mtls-on crl-only)) {
				my $n = start($name, workers => $workers,
					cpus => "$o{nginx_cpus},$o{load_cpus}");
				check($n);
				# Give every worker connections, with the CRL looked up.
				oha($n, handshake => 1, duration => 1,
					connections => 16);
				Time::HiRes::sleep(0.5);
				# The revocation loader is no child of the master (see
				# src/loader/process.rs): found in its process group.
				my @pids = (family($n->{pid}),
					map { $_->[0] } Mtls::loaders($n->{pid}));
				my $pss = 0;
				$pss += pss_kb($_) for @pids;
				my $shm = 0;
				$shm += -s $_ for glob "/dev/shm/ngx_mtls.$n->{pid}.*";
				push @{$mem{"$name/$workers"}}, {
					pss => $pss / 1024, shm => $shm / 1048576,
					processes => scalar @pids,
				};
				say_(sprintf('memory %-8s %d workers: PSS %.1f MiB, tables '
					. '%.1f MiB', $name, $workers, $pss / 1024,
					$shm / 1048576));
				stop($n);
			}
		}
	}
}

###############################################################################
# Ratios by target: bench/ratios.json keeps, for each target, the medians of
# its last full (or --quick) run; RESULTS.md shows them side by side.

my $ratios_file = "$top/bench/ratios.json";
my $by_target_begin = '<!-- by target: written by bench/bench.pl from'
	. ' bench/ratios.json -->';
my $by_target_end = '<!-- end of by target -->';
my @target_order = qw(debian-12 debian-13 debian-testing upstream);

# The median of a ratio or difference as formatted above: its first figure.
sub first { ($_[0] =~ /^([-+]?[\d.]+)/)[0] }

my $recorded = 0;
sub record_ratios {
	return if $partial || $o{out} ne $default_out || !%tp;
	my $all = -f $ratios_file
		? JSON::PP::decode_json(Mtls::slurp($ratios_file)) : {};
	my %shapes;
	for my $s (@shapes) {
		my $shape = $s->[0];
		my $base = $tp{$shape}{baseline} or next;
		$shapes{$shape} = { map {
			my $rs = $tp{$shape}{$_};
			$_ => {
				throughput => first(ratio($rs, $base, 'rps')) + 0,
				cpu => first(ratio($base, $rs, 'cpu')) + 0,
				cpu_us => sprintf('%.1f', median(map { $_->{cpu} } @$rs)) + 0,
			};
		} grep { $tp{$shape}{$_} } @throughput };
	}
	$all->{$o{target}} = {
		nginx => $nginx_version,
		openssl => $built_with // '',
		run => POSIX::strftime('%Y-%m-%d', gmtime($started)),
		command => join(' ', 'scripts/bench', @given),
		rounds => $o{rounds},
		shapes => \%shapes,
		($has_h3 ? () : (no_h3 => "$nginx_version has no HTTP/3")),
	};
	Mtls::spew($ratios_file,
		JSON::PP->new->canonical->pretty->encode($all));
	$recorded = 1;
}

sub by_target {
	return () unless -f $ratios_file;
	my $all = JSON::PP::decode_json(Mtls::slurp($ratios_file));
	my @t = grep { $all->{$_} } @target_order;
	return () unless @t;
	my @out = ($by_target_begin, '## By target', '',
		'The medians of each target\'s last full (or --quick) run'
		. ' (bench/ratios.json),'
		. ' each against plain nginx of the same target in the same rounds:'
		. ' CPU ratio to 1 / throughput ratio to 1 (above 1: faster than'
		. ' plain nginx), then the worker\'s CPU time per request. Each'
		. ' target\'s own file (bench/RESULTS.md for debian-12,'
		. ' bench/RESULTS-NAME.md for the others) has the rounds\' spread.',
		'',
		map({ my $e = $all->{$_};
			"- $_: $e->{nginx}, $e->{openssl}; $e->{run}, $e->{rounds}"
			. " rounds (`$e->{command}`)" } @t), '');
	for my $s ([ 'keepalive', 'keep-alive' ],
		[ 'handshake', 'new TLS handshake per request' ],
		[ 'h3', 'HTTP/3 (QUIC), keep-alive' ]) {
		my ($shape, $title) = @$s;
		next unless grep { $all->{$_}{shapes}{$shape} } @t;
		my @names = grep { my $n = $_;
			grep { $all->{$_}{shapes}{$shape}{$n} } @t } keys %configs;
		@names = sort { $configs{$a}{label} cmp $configs{$b}{label} } @names;
		push @out, "### $title", '',
			'| configuration | ' . join(' | ', @t) . ' |',
			'|---|' . join('', map { '---|' } @t);
		for my $n (@names) {
			push @out, "| $configs{$n}{label} | " . join(' | ', map {
				my $e = $all->{$_};
				my $r = $e->{shapes}{$shape} && $e->{shapes}{$shape}{$n};
				$r ? sprintf('%.3f / %.3f, %.1f us', @$r{qw(cpu throughput
					cpu_us)})
				: $shape eq 'h3' && $e->{no_h3} ? "- ($e->{no_h3})" : '-';
			} @t) . ' |';
		}
		push @out, '';
	}
	return (@out, $by_target_end, '');
}

###############################################################################
# RESULTS.md

sub cmd_out {
	my $out = `@_ 2>&1`;
	chomp $out;
	return $out;
}

sub f0 { sprintf('%.0f', $_[0]) }
sub f2 { sprintf('%.2f', $_[0]) }
sub f3 { sprintf('%.3f', $_[0]) }

my $finished = time();
record_ratios();
my @md;
my $debian12 = $o{target} eq 'debian-12';
push @md, '# Benchmark results' . ($debian12 ? '' : " on $o{target}"), '',
	'Written by `' . join(' ', 'scripts/bench', @given)
	. '` (bench/bench.pl); do not edit by hand: '
	. ($debian12 ? 'bench/NOTES.md is copied in at the end.'
		: 'bench/RESULTS.md (Debian 12) has the notes, and shows every'
		. ' target\'s ratios side by side.'), '';

# Where nginx ran: the host, or a target's userland (a chroot, in which
# everything of the run happened: nginx, oha, the helpers).
my ($os) = Mtls::slurp('/etc/os-release') =~ /^PRETTY_NAME="?([^"\n]*)/m;
my $where = $debian12 ? "the host ($os), its nginx package"
	: $o{target} eq 'upstream'
		? "nginx built from the nginx-src crate, run in a $os chroot"
		: "a $os chroot, its nginx package";

my ($cpu) = grep { /^model name/ } split /\n/, Mtls::slurp('/proc/cpuinfo');
$cpu =~ s/^model name\s*:\s*//;
my $load_end = Mtls::slurp('/proc/loadavg');
push @md, '## Machine and versions', '',
	"- CPU: $cpu, " . cmd_out('nproc') . ' cores; '
	. cmd_out("awk '/MemTotal/ {printf \"%.1f GiB\", \$2 / 1048576}' /proc/meminfo")
	. ' memory',
	'- kernel: ' . cmd_out('uname -sr'),
	"- target: $o{target}: $where",
	'- nginx: ' . cmd_out("$nginx -v") . ', ' . ($built_with // '?')
	. '; the helpers\' ' . cmd_out('openssl version'),
	'- load generator: ' . cmd_out("$o{oha} --version")
	. ($shape{h3} ? ' (for HTTP/3: the same version built with its http3'
		. ' feature, quinn and h3)' : ''),
	'- module: ' . ($o{module_rev}
		|| cmd_out("git -C $top log -1 --format='%h %s'")
		. (cmd_out("git -C $top status --porcelain -- src Cargo.toml"
			. ' Cargo.lock') ? ' (with uncommitted changes)' : '')),
	'- ' . cmd_out('rustc --version'),
	'- run: ' . POSIX::strftime('%Y-%m-%d %H:%M UTC', gmtime($started))
	. sprintf(', %.1f minutes; load average at the end: %s', 
		($finished - $started) / 60, join(' ', (split ' ', $load_end)[0 .. 2])),
	"- nginx: 1 worker pinned to CPU $o{nginx_cpus} (taskset); oha pinned to"
	. " CPU $o{load_cpus}; HTTP/1.1 over TLS 1.3"
	. ($shape{h3} ? ' (and HTTP/3 over QUIC for the h3 shape)'
		: $has_h3 ? '' : " (no HTTP/3 shape: $nginx_version has no HTTP/3)")
	. ', ECDSA P-256 certificates,'
	. ' a 25-byte static file; other jobs share the machine',
	'- error logs of all the servers started: '
	. (@incidents ? 'lines at crit or above:'
		: 'no line at crit or above (no worker crashed)'),
	(map { "  - `$_`" } @incidents), '';
push @md, by_target();

if (%tp) {
	push @md, '## Throughput', '',
		"$o{rounds} rounds; in each round every configuration is started"
		. ' afresh (a new nginx, warmed up for 0.5 s) and runs for'
		. " $o{duration} s with $o{connections} connections, one after the"
		. ' other (interleaved; each round starts with the next'
		. ' configuration). Requests per second: min / median / max over'
		. ' the rounds. The ratio is taken within each round against the'
		. ' baseline (or the map/if configuration named), then the median'
		. ' (min-max) over the rounds. With the machine shared, the'
		. ' throughput depends on the share of the CPU that nginx gets; the'
		. ' CPU time of the nginx worker per request (from'
		. ' /proc/PID/schedstat) measures the cost itself, and its ratio'
		. ' (baseline over configuration, so that higher is faster, like the'
		. ' throughput ratio) is the steadier figure.', '';
	for my $s (@shapes) {
		my ($shape, $title) = @$s;
		my $base = $tp{$shape}{baseline};
		push @md, "### $title", '',
			'| configuration | req/s min | median | max | throughput ratio to 1 | CPU us/req | CPU us/req over 1 | CPU ratio to 1 | p50 ms | p99 ms | failed |',
			'|---|---:|---:|---:|---|---:|---|---|---:|---:|---:|';
		for my $name (@throughput) {
			my $rs = $tp{$shape}{$name};
			my @rps = mmm(map { $_->{rps} } @$rs);
			my ($ratio, $cpu_over, $cpu_ratio) = ('', '', '');
			if ($base) {
				$ratio = ratio($rs, $base, 'rps');
				$cpu_over = difference($rs, $base, 'cpu');
				$cpu_ratio = ratio($base, $rs, 'cpu');
			}
			my $failed = 0;
			$failed += $_->{failed} for @$rs;
			push @md, sprintf('| %s | %s | %s | %s | %s | %.1f | %s | %s | %s | %s | %d |',
				$configs{$name}{label}, (map { f0($_) } @rps), $ratio,
				median(map { $_->{cpu} } @$rs), $cpu_over, $cpu_ratio,
				f3(median(map { $_->{p50} } @$rs)),
				f3(median(map { $_->{p99} } @$rs)), $failed);
		}
		my @vs = grep { $tp{$shape}{$_->[0]} && $tp{$shape}{$_->[1]} }
			([ 'names', 'map-10k' ], [ 'mtls-on', 'map-1' ],
				[ 'fwd-rfc9440', 'fwd-pem' ]);
		if (@vs) {
			push @md, '', 'Module against the nginx configuration doing the'
				. ' same (within each round; above 1: the module is faster):', '';
			for (@vs) {
				my ($a, $b) = map { $tp{$shape}{$_} } @$_;
				push @md, sprintf('- %s against %s: throughput %s, CPU %s',
					$configs{$_->[0]}{label}, $configs{$_->[1]}{label},
					ratio($a, $b, 'rps'), ratio($b, $a, 'cpu'));
			}
		}
		my @failures = map { "- $_" }
			map { failures($configs{$_}{label}, $tp{$shape}{$_}) } @throughput;
		push @md, '', 'Failed requests (the round\'s CPU time is per'
			. ' response, so that failures that never reached nginx do not'
			. ' lower it):', '', @failures if @failures;
		if ($base) {
			my @b = mmm(map { $_->{rps} } @$base);
			my @c = mmm(map { $_->{cpu} } @$base);
			push @md, '', sprintf('Noise: the baseline\'s throughput varied'
				. ' by %.1f%% (max-min over median) across the rounds, its CPU'
				. ' time per request by %.1f%%.',
				map { $_->[1] ? 100 * ($_->[2] - $_->[0]) / $_->[1] : 0 }
					\@b, \@c);
		}
		push @md, '';
	}
}

if (%reload) {
	push @md, '## Live reload under load', '',
		"Configuration 5, keep-alive, 8 connections at $o{reload_rate}"
		. " requests per second (open loop, oha --latency-correction) for"
		. " $o{reload_seconds} s, in a fresh nginx each run; with \"rewrite\","
		. " the 1,000,000-entry CRL is replaced every second (written to a"
		. ' temporary file, then renamed over the old one) with the next CRL'
		. " number. $o{reload_rounds} rounds, still and rewrite alternating."
		. ' Latencies in ms, min / median / max over the rounds.', '',
		'| run | p50 | p99 | max | failed requests | files written | reloads seen in mtls_status | CRL number in force at the end |',
		'|---|---|---|---|---:|---:|---|---|';
	for my $mode (qw(still rewrite)) {
		my $rs = $reload{$mode};
		my $failed = 0;
		$failed += $_->{failed} for @$rs;
		push @md, sprintf('| %s | %s | %s | %s | %d | %d | %s | %s |', $mode,
			(map { my $k = $_; join(' / ', map { f2($_) }
				mmm(map { $_->{$k} } @$rs)) } qw(p50 p99 max)),
			$failed, $mode eq 'rewrite' ? $o{reload_seconds} - 1 : 0,
			join(', ', map { $_->{reloads} } @$rs),
			join(', ', map { $_->{number} // '?' } @$rs));
	}
	my @errors = grep { defined } map { $_->{last_error} } @{$reload{rewrite}};
	my @failures = map { failures($_, $reload{$_}) } qw(still rewrite);
	my @d = map { $reload{rewrite}[$_]{max} - $reload{still}[$_]{max} }
		0 .. $#{$reload{rewrite}};
	push @md, '', sprintf('Max latency with rewrites minus without, within'
		. ' each round: median %.2f ms (%.2f to %.2f).', (mmm(@d))[1, 0, 2]),
		'Every run ended with the revoked certificate denied: '
		. ((grep { !$_->{revoked_ok} } map { @$_ } values %reload)
			? 'NO' : 'yes') . '.',
		(@failures ? ('Failed requests: ' . join('; ', @failures) . '.') : ()),
		(@errors ? ('Errors reported by mtls_status: ' . join('; ', @errors)
			. '.') : 'mtls_status reported no load error.'),
		'A file replaced while the previous one is still being read is'
		. ' picked up with the next check: fewer reloads than files means'
		. ' that some were skipped for a newer one, not lost.',
		'';
}

if (%owait) {
	push @md, '## OCSP: other connections while a look-up waits', '',
		"The OCSP configuration with a responder that answers after 2 s"
		. " (a one-process proxy in front of \"openssl ocsp\"),"
		. " mtls_ocsp_timeout 5s; keep-alive, 8 connections at"
		. " $o{ocsp_rate} requests per second (open loop) for"
		. " $o{ocsp_seconds} s with the benchmark client, whose answer is"
		. ' cached. Meanwhile, from 0.5 s on, a second client (curl)'
		. ' connects again and again, one request at a time:'
		. ' \"waiting\", each time with a certificate new to the cache, so'
		. ' that each request waits 2 s for its look-up; \"quiet\", with'
		. ' the benchmark client\'s certificate, at the same pace (one'
		. ' request every 2 s), so that the two runs differ by the waits'
		. ' alone; \"responder\", as quiet, while the same look-ups as'
		. ' in the waiting run are sent to the proxy from outside nginx:'
		. ' the responder\'s share of the load generator\'s CPU, which a'
		. ' deployment has on another machine. A fresh nginx each run, one'
		. " worker; $o{ocsp_rounds} rounds, each starting with the next"
		. ' mode. Latencies in ms, min / median / max over the rounds.',
		'',
		'| run | p50 | p99 | max | worker CPU per request (us) | loader CPU per run (ms) | failed requests | second client\'s requests (s) |',
		'|---|---|---|---|---|---|---:|---|';
	for my $mode (qw(quiet responder waiting)) {
		my $rs = $owait{$mode};
		my $failed = 0;
		$failed += $_->{failed} for @$rs;
		push @md, sprintf('| %s | %s | %s | %s | %s | %s | %d | %s |',
			$mode, (map { my $k = $_; join(' / ', map { f2($_) }
				mmm(map { $_->{$k} } @$rs)) }
				qw(p50 p99 max cpu loader_ms)),
			$failed, join(', ', map { sprintf('%.2f', $_) }
				map { @{$_->{waits} // []} } @$rs) || '-');
	}
	push @md, '';
	for my $base (qw(quiet responder)) {
		my @d = map { $owait{waiting}[$_]{p99} - $owait{$base}[$_]{p99} }
			0 .. $#{$owait{waiting}};
		push @md, sprintf("p99 while waiting minus $base, within each"
			. ' round: median %+.2f ms (%+.2f to %+.2f).',
			(mmm(@d))[1, 0, 2]);
	}
	push @md, '', 'Every request of the second client was answered 200: '
		. ((grep { !$_->{waits_ok} } map { @$_ } values %owait) ? 'NO'
			: 'yes')
		. '.', '';
}

if (%mem) {
	push @md, '## Memory', '',
		'Proportional set size (PSS, /proc/PID/smaps_rollup) summed over the'
		. ' master, its workers and the revocation loader, after a second of'
		. ' traffic; and the'
		. ' module\'s tables in /dev/shm, which are held once by the machine'
		. ' and count in PSS only where a process has touched their pages. MiB,'
		. " min / median / max over $o{memory_rounds} round(s).", '',
		'| configuration | workers | PSS | tables in /dev/shm |',
		'|---|---:|---|---|';
	for my $name (qw(mtls-on crl-only)) {
		for my $workers (1, 4) {
			my $rs = $mem{"$name/$workers"};
			push @md, sprintf('| %s | %d | %s | %s |',
				$configs{$name}{label}, $workers,
				(map { my $k = $_; join(' / ', map { sprintf('%.1f', $_) }
					mmm(map { $_->{$k} } @$rs)) } qw(pss shm)));
		}
	}
	my $cost = sub {
		my ($workers) = @_;
		median(map { $_->{pss} } @{$mem{"crl-only/$workers"}})
			- median(map { $_->{pss} } @{$mem{"mtls-on/$workers"}});
	};
	push @md, '', sprintf('The large CRL adds %.1f MiB of PSS with 1 worker'
		. ' and %.1f MiB with 4 workers (medians).', $cost->(1), $cost->(4)), '';
}

if ($debian12 && -f "$top/bench/NOTES.md") {
	push @md, Mtls::slurp("$top/bench/NOTES.md");
}

Mtls::spew($o{out}, join("\n", @md) . "\n");
say_("wrote $o{out}");

# Another target's run also refreshes the side-by-side section of Debian
# 12's results, between its markers (or, the first time, before its
# throughput), so that its ratios stand next to Debian 12's.
my $results = "$top/bench/RESULTS.md";
if ($recorded && !$debian12 && -f $results) {
	my $text = Mtls::slurp($results);
	my $section = join("\n", by_target()) . "\n";
	$text =~ s/\Q$by_target_begin\E.*?\Q$by_target_end\E\n\n?/<<MARK>>/s
		or $text =~ s/^(?=## Throughput)/<<MARK>>/m
		or $text .= "\n<<MARK>>";
	$text =~ s/<<MARK>>/$section/;
	Mtls::spew($results, $text);
	say_("updated the ratios by target in $results");
}
