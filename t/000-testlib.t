#!/usr/bin/perl

# Self-test of t/lib/Test/Nginx.pm with the plain nginx binary (no module of
# ours in the configuration; TEST_NGINX_GLOBALS still applies).  Uses only
# the upstream Test::Nginx API, except that reload() is expected to return
# once the new configuration serves requests.

use strict;
use warnings;

use Test::More;
use Test::Nginx qw/:DEFAULT http_start http_end http_content/;

my $t = Test::Nginx->new()->has(qw/http rewrite http_ssl/)
    ->has_daemon('openssl')->plan(16);
my $d = $t->testdir();

sub write_conf {
    my ($greeting) = @_;
    (my $conf = <<'EOF') =~ s/GREETING/$greeting/;

%%TEST_GLOBALS%%

events {
}

http {
    %%TEST_GLOBALS_HTTP%%

    server {
        listen       127.0.0.1:%%PORT_8080%%;
        server_name  localhost;

        location / {
            return 200 "GREETING";
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

write_conf('hello');

system('openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 '
    . "-nodes -days 1 -subj /CN=localhost -keyout $d/localhost.key "
    . "-out $d/localhost.crt >>$d/openssl.out 2>&1") == 0
    or die "Can't create certificate\n";

my $port = port(8080);
$t->write_file_expand('expanded', '%%TESTDIR%% %%PORT_8080%%');

$t->run_daemon(sub {
    open my $fh, '>', "$d/daemon.ready" or die "$!\n";
    close $fh;
    sleep 60;
});

$t->run();

###############################################################################

like(http_get('/'), qr{^HTTP/1\.1 200 .*\x0d\x0a\x0d\x0ahello\z}s, 'http_get');
is(http_content(http_get('/')), 'hello', 'http_content');
is(http_content("HTTP/1.1 200 OK\x0d\x0aTransfer-Encoding: chunked\x0d\x0a"
    . "\x0d\x0a5\x0d\x0ahello\x0d\x0a6\x0d\x0a world\x0d\x0a0\x0d\x0a\x0d\x0a"),
    'hello world', 'http_content chunked');

my $head = http_head('/');
ok($head =~ m{^HTTP/1\.1 200 } && $head !~ /hello/, 'http_head');

is(port(8080), $port, 'port stable');
isnt(port(8081), port(8080), 'ports distinct');
ok($t->waitforsocket('127.0.0.1:' . port(8080)), 'waitforsocket');

my $s = http_get('/', start => 1);
like(http_end($s), qr/hello/, 'http start and end');

like(http("GET / HTTP/1.0\x0d\x0aHost: localhost\x0d\x0a",
    body => "\x0d\x0a", sleep => 0.2), qr/hello/, 'http body after sleep');

like(http_get('/', PeerAddr => '127.0.0.1:' . port(8443), SSL => 1,
    SSL_version => 'TLSv1_2'), qr/secure TLSv1\.2/, 'ssl with options');
is(http_get('/', SSL => 1), undef, 'ssl handshake failure');

is($t->read_file('expanded'), "$d $port", 'write_file_expand');
ok($t->has_module('rewrite') && !$t->has_module('no_such'), 'has_module');
ok($t->has_version('1.0') && !$t->has_version('999.0'), 'has_version');
ok($t->waitforfile("$d/daemon.ready"), 'run_daemon');

write_conf('bye');
$t->reload();

is(scalar(grep { (http_get('/') // '') =~ /bye/ } 1 .. 5), 5, 'reload');

###############################################################################
