#!/usr/bin/perl

# Self-test of t/lib/Test/Nginx.pm with the plain nginx binary (no module of
# ours in the configuration; TEST_NGINX_GLOBALS still applies).  It checks
# only what upstream's Test::Nginx does too, so that it passes under either
# library (scripts/test --upstream-lib): the client functions, ports, the
# expansions, reload, stop and the daemons, and what a test file gets at
# its end (the error log checks for every instance, TEST_NGINX_LEAVE,
# TEST_NGINX_CATLOG, TEST_NGINX_VERBOSE), the latter from small test files
# run in a child perl.

use strict;
use warnings;

use Test::More;

BEGIN { use FindBin; chdir($FindBin::Bin); }

use File::Basename qw/dirname/;
use File::Path qw/rmtree/;
use IO::Socket::INET;
use Test::Nginx qw/:DEFAULT http_start http_end http_content/;

my $t = Test::Nginx->new()->has(qw/http rewrite http_ssl/)
    ->has_daemon('openssl')->plan(37);
my $d = $t->testdir();

sub write_conf {
    my ($t, $greeting) = @_;
    (my $conf = <<'EOF') =~ s/GREETING/$greeting/;

%%TEST_GLOBALS%%

daemon off;

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen       127.0.0.1:8080;
        server_name  localhost;

        location / {
            return 200 "GREETING";
        }

        location = /file.txt {
        }
    }

    server {
        listen       127.0.0.1:%%PORT_8443%% ssl;
        server_name  localhost;

        ssl_certificate      localhost.crt;
        ssl_certificate_key  localhost.key;

        location / {
            return 200 "secure $ssl_protocol";
        }
    }
}

EOF
    $t->write_file_expand('nginx.conf', $conf);
}

write_conf($t, 'hello');

system('openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 '
    . "-nodes -days 1 -subj /CN=localhost -keyout $d/localhost.key "
    . "-out $d/localhost.crt >>$d/openssl.out 2>&1") == 0
    or die "Can't create certificate\n";

$t->write_file('file.txt', 'from the test directory');

my $port = port(8080);
$t->write_file_expand('expanded',
    '%%TESTDIR%% %%PORT_8080%% 127.0.0.1:8081 %%PORT_8082_UDP%%');

$t->run_daemon(sub {
    open my $fh, '>', "$d/daemon.ready" or die "$!\n";
    print $fh $$;
    close $fh;
    sleep 60;
});

$t->run();

###############################################################################

# the client functions

like(http_get('/'), qr{^HTTP/1\.1 200 .*\x0d\x0a\x0d\x0ahello\z}s, 'http_get');
is(http_content(http_get('/')), 'hello', 'http_content');
is(http_content("HTTP/1.1 200 OK\x0d\x0aTransfer-Encoding: chunked\x0d\x0a"
    . "\x0d\x0a5\x0d\x0ahello\x0d\x0a6\x0d\x0a world\x0d\x0a0\x0d\x0a\x0d\x0a"),
    'hello world', 'http_content chunked');
is(http_content("HTTP/1.1 200 OK\x0d\x0aTransfer-Encoding: chunked\x0d\x0a"
    . "\x0d\x0a5\x0d\x0ahello\x0d\x0a"), 'hello[no-last-chunk]',
    'http_content without the last chunk');
is(http_content("HTTP/1.1 200 OK\x0d\x0a"), undef, 'http_content without body');

my $head = http_head('/');
ok($head =~ m{^HTTP/1\.1 200 } && $head !~ /hello/, 'http_head');

my $s = http_get('/', start => 1);
like(http_end($s), qr/hello/, 'http start and end');

like(http("GET / HTTP/1.0\x0d\x0aHost: localhost\x0d\x0a",
    body => "\x0d\x0a", sleep => 0.2), qr/hello/, 'http body after sleep');

like(http_get('/', SSL => 1), qr/secure TLSv1/, 'ssl to port 8443');
like(http_get('/', PeerAddr => '127.0.0.1:' . port(8443), SSL => 1,
    SSL_version => 'TLSv1_2'), qr/secure TLSv1\.2/, 'ssl with options');
is(http_get('/', SSL => 1, PeerAddr => '127.0.0.1:' . port(8080)), undef,
    'ssl handshake failure');

# the root of %%TEST_GLOBALS_HTTP%% is the test directory

like(http_get('/file.txt'), qr/from the test directory\z/, 'root');

# ports: one per logical port, reserved by a socket of the other protocol
# held until the end

is(port(8080), $port, 'port stable');
isnt(port(8081), port(8080), 'ports distinct');
ok($t->waitforsocket('127.0.0.1:' . port(8080)), 'waitforsocket');
ok(!IO::Socket::INET->new(Proto => 'udp', LocalAddr => "127.0.0.1:$port"),
    'TCP port reserved for UDP');
ok(!IO::Socket::INET->new(Proto => 'tcp', Listen => 1, ReuseAddr => 1,
    LocalAddr => '127.0.0.1:' . port(8082)), 'UDP port reserved for TCP');
ok(port(8083, socket => 1)->isa('IO::Socket'), 'port socket');

# the expansions

is($t->read_file('expanded'), "$d $port 127.0.0.1:" . port(8081) . ' '
    . port(8082), 'write_file_expand');
like($t->read_file('nginx.conf'), qr/^\s*root \Q$d\E;$/m,
    '%%TEST_GLOBALS_HTTP%% has root');
like($t->dump_config(), qr/return 200 "hello"/, 'dump_config');

# features

ok($t->has_module('rewrite') && !$t->has_module('no_such'), 'has_module');
ok($t->has_version('1.0') && !$t->has_version('999.0'), 'has_version');
ok($t->waitforfile("$d/daemon.ready"), 'run_daemon');

# reload() sends the signal; the new configuration comes with new workers

write_conf($t, 'bye');
$t->reload();

my $bye;
for (1 .. 50) {
    last if $bye = (http_get('/') // '') =~ /bye/;
    select undef, undef, undef, 0.1;
}
ok($bye, 'reload');

# stop() stops nginx, not the daemons

$t->stop();

my $daemon = $t->read_file('daemon.ready');
is(http_get('/'), undef, 'stopped');
ok(kill(0, $daemon), 'stop leaves the daemons');

# the end of a test file, as seen from its output

my %child = child(<<'EOF');
my $t = Test::Nginx->new()->plan(1);
my $other = Test::Nginx->new();
my $never = Test::Nginx->new();
$t->write_file('error.log', "2000/01/01 00:00:00 [crit] 1#1: crit\n");
$other->write_file('error.log', "2000/01/01 00:00:00 [notice] 1#1: notice\n");
print "# testdir: ", $t->testdir(), "\n";
ok(1, 'child');
EOF

is($child{plan}, '1..3', 'child: plan counts the checks of $t');
is($child{results}, 'ok child, ok no alerts, ok no alerts, '
    . 'ok no sanitizer errors, ok no sanitizer errors',
    'child: checks of every instance with error.log, [crit] is no alert');
ok($child{dir} && !-e $child{dir}, 'child: test directory removed');

%child = child(<<'EOF', TEST_NGINX_LEAVE => 1, TEST_NGINX_CATLOG => 1);
my $t = Test::Nginx->new()->plan(1);
$t->write_file('error.log', "2000/01/01 00:00:00 [alert] 1#1: ALERT\n"
    . "==1==ERROR: AddressSanitizer: heap-use-after-free\n");
print "# testdir: ", $t->testdir(), "\n";
ok(1, 'child');
EOF

is($child{results}, 'ok child, not ok no alerts, not ok no sanitizer errors',
    'child: alert and sanitizer report');
ok($child{dir} && -e "$child{dir}/error.log", 'child: TEST_NGINX_LEAVE');
like($child{output}, qr/^[^\n]*\] 1#1: ALERT$/m, 'child: TEST_NGINX_CATLOG');
rmtree($child{dir}) if $child{dir};

%child = child(<<'EOF', TEST_NGINX_VERBOSE => 1);
my $t = Test::Nginx->new()->plan(1)->todo_alerts();
$t->write_file('error.log', "2000/01/01 00:00:00 [alert] 1#1: alert\n");
log_out('to nginx');
ok(1, 'child');
EOF

is($child{results}, 'ok child, not ok no alerts # TODO alerts, '
    . 'ok no sanitizer errors', 'child: todo_alerts');
like($child{output}, qr/^# >> to nginx$/m, 'child: TEST_NGINX_VERBOSE');

# an instance that a named sub keeps is destroyed too late for its checks:
# upstream's then break the test file, ours fail it

%child = child(<<'EOF');
my $t = Test::Nginx->new()->plan(1);
$t->write_file('error.log', '');
sub keep { return $t }
ok(1, 'child');
EOF

isnt($child{status}, 0, 'child: instance kept by a named sub');

# stop() of a daemonized nginx sends QUIT without waiting, as upstream's
# does; its master is gone soon after the end of the test file

%child = child(<<'EOF', TEST_NGINX_LEAVE => 1);
my $t = Test::Nginx->new()->plan(1);
$t->write_file_expand('nginx.conf', "%%TEST_GLOBALS%%\nevents {\n}\n");
$t->run();
print "# testdir: ", $t->testdir(), "\n";
print "# master: ", $t->read_file('nginx.pid'), "\n";
$t->stop();
ok(1, 'child');
EOF

my ($master) = $child{output} =~ /^# master: (\d+)$/m;
my $gone = 0;
for (1 .. 100) {
    last if $gone = !defined $master || !running($master);
    select undef, undef, undef, 0.05;
}
my $log = '';
if ($child{dir} && open my $fh, '<', "$child{dir}/error.log") {
    local $/;
    $log = <$fh>;
}
ok($master && $gone && $log =~ /gracefully shutting down/
    && $log =~ /\[notice\] \Q$master\E#\d+: exit$/m,
    'child: stop() makes a daemonized nginx quit, gone at the end')
    or diag($child{output});
rmtree($child{dir}) if $child{dir};

###############################################################################

# runs a test file made of the given code with the Test::Nginx that this
# file uses, and the given environment: its plan, its results in order of
# names, its test directory, its whole output and its exit status

sub child {
    my ($code, %env) = @_;

    my $file = "$d/child.t";
    open my $fh, '>', $file or die "Can't create $file: $!\n";
    print $fh "use strict;\nuse warnings;\nuse Test::More;\nuse Test::Nginx;\n"
        . $code;
    close $fh;

    my $lib = dirname(dirname($INC{'Test/Nginx.pm'}));

    local @ENV{keys %env} = values %env;
    delete local @ENV{grep { !exists $env{$_} }
        qw/TEST_NGINX_LEAVE TEST_NGINX_CATLOG TEST_NGINX_VERBOSE/};

    my $output = `"$^X" -I "$lib" "$file" 2>&1`;

    my ($plan) = $output =~ /^(1\.\.\d+)$/m;
    my @results = map { s/^(not ok|ok) \d+ - /$1 /r }
        $output =~ /^((?:not )?ok \d+ - .*)$/mg;
    my ($dir) = $output =~ /^# testdir: (.*)$/m;

    return (plan => $plan // '', output => $output, dir => $dir, status => $?,
        results => join(', ', sort { _name($a) cmp _name($b) } @results));
}

sub _name { return $_[0] =~ s/^(?:not )?ok //r }

# whether a process runs (a zombie, left to whoever reaps orphans, does not)

sub running {
    my ($pid) = @_;
    open my $fh, '<', "/proc/$pid/stat" or return 0;
    my $stat = <$fh> // '';
    return (split ' ', substr($stat, rindex($stat, ')') + 1))[0] !~ /^[ZX]$/;
}

###############################################################################
