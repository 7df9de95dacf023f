# snowlink-http against a server with snowlink, checked with curl: every status and header of the
# redirects, HEAD, the 404 page, codes that cannot be codes, the API with the keys of two owners,
# a read-only key and a revoked one (every route, status and error), the deprecated token, /ids,
# QR codes read back by zbarimg, domains by Host, rate limits, the OpenAPI document checked by
# openapi-spec-validator, JSON logs with request IDs, /metrics checked by promtool, /healthz and
# /readyz, start-up errors, a database restart, requests that a browser never sends, SIGTERM. Then
# a real browser, headless Chromium, opens the 404 page and follows a short link to a page served
# on loopback.
#
# It runs the snowlink-http of SNOWLINK_HTTP_BINARY (by default target/release/snowlink-http of
# the checkout), the Python of SNOWLINK_TEST_OPENAPI_PYTHON for openapi-spec-validator (by default
# python3), and curl, chromium, zbarimg and promtool from PATH; scripts/test.sh provides them all.
use strict;
use warnings;
use FindBin;
use lib "$FindBin::RealBin/lib";
use SnowlinkTest;
use IPC::Run;
use JSON::PP;
use POSIX ();
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Time::HiRes;

# The checkout: the documents and scripts whose examples and files this test runs.
my $source = "$FindBin::RealBin/..";
my $binary = $ENV{SNOWLINK_HTTP_BINARY} // "$source/target/release/snowlink-http";
plan skip_all => "snowlink-http is not built ($binary): cargo build --release -p snowlink-http" unless -x $binary;
my $openapi_python = $ENV{SNOWLINK_TEST_OPENAPI_PYTHON} // 'python3';
my ($version) = slurp_file("$source/http/Cargo.toml") =~ /^version = "([^"]+)"$/m;
my $work = PostgreSQL::Test::Utils::tempdir();
my $db = 'http';
my $token = 'test-token-0123456789';
my $json = JSON::PP->new->canonical->allow_nonref;

my $node = snowlink_node('server');
my $page_port = PostgreSQL::Test::Cluster::get_free_port();
sub sql { $node->safe_psql(@_) }
sql('postgres', "CREATE DATABASE $db");
sql('postgres', 'CREATE DATABASE http_old');
sql('postgres', 'CREATE DATABASE no_extension');
# The redirecting role may log in and nothing more: anyone may follow a link. The role behind the
# API makes links as the extension's role for applications, for the owners of its keys.
sql($db, "CREATE EXTENSION snowlink;
	CREATE ROLE redirects LOGIN;
	CREATE ROLE link_maker LOGIN IN ROLE snowlink_user;
	SELECT count(*) FROM (
	    SELECT shorten('http://127.0.0.1:$page_port/landed.html', code => 'browser')
	    UNION ALL SELECT shorten('https://example.com/found', code => 'found')
	    UNION ALL SELECT shorten('https://example.com/moved', code => 'moved', redirect_status => 301)
	    UNION ALL SELECT shorten('https://example.com/same-method', code => 'same-method', redirect_status => 307)
	    UNION ALL SELECT shorten('https://example.com/moved-308', code => 'moved-308', redirect_status => 308,
	                             expires_at => now() + interval '1 hour')
	    UNION ALL SELECT shorten('https://example.com/once', code => 'once', max_visits => 1)
	    UNION ALL SELECT shorten('https://example.com/off', code => 'off')
	    UNION ALL SELECT shorten('https://example.com/a?q=1&r=%C3%A4', code => 'query')) AS made;
	SELECT shortlink_disable('off')");

sub database_url
{
	my ($role, $database) = @_;
	return 'host=' . $node->host . ' port=' . $node->port . ' dbname=' . ($database // $db) . " user=$role";
}

# run_server(ENV, ARGUMENT...): snowlink-http run to its end with the variables of the hash ENV
# (undef: unset); its exit code and what it wrote to stderr.
sub run_server
{
	my ($env, @arguments) = @_;
	local %ENV = %ENV;
	delete $ENV{DATABASE_URL};
	$ENV{$_} = $env->{$_} for keys %$env;
	defined $ENV{$_} or delete $ENV{$_} for keys %ENV;
	my ($stdout, $stderr) = ('', '');
	IPC::Run::run([ $binary, @arguments ], '>', \$stdout, '2>', \$stderr,
		IPC::Run::timeout($PostgreSQL::Test::Utils::timeout_default));
	return ($? >> 8, $stdout, $stderr);
}

# start_process(LOG, COMMAND...): COMMAND in the background, its output in the file LOG; its PID.
# Whatever is still running when the test ends is killed.
my %running;
sub start_process
{
	my ($log, @command) = @_;
	my $pid = fork // die "fork: $!";
	if ($pid == 0)
	{
		open STDOUT, '>', $log or die "$log: $!";
		open STDERR, '>&', \*STDOUT or die "stderr: $!";
		exec @command or POSIX::_exit(127);
	}
	$running{$pid} = 1;
	return $pid;
}

# stop_process(PID, SIGNAL): sends SIGNAL and waits; the exit code.
sub stop_process
{
	my ($pid, $signal) = @_;
	kill $signal, $pid;
	waitpid $pid, 0;
	delete $running{$pid};
	return $? >> 8;
}

END
{
	local $?;
	kill 'KILL', keys %running;
	waitpid $_, 0 for keys %running;
}

# start_http(NAME, ROLE, ENV, port => PORT, launcher => COMMAND): snowlink-http as ROLE with the
# variables of the hash ENV, on PORT (by default a free port), through the command COMMAND (a
# list) if given, once it listens; { pid, log, url }.
sub start_http
{
	my ($name, $role, $env, %options) = @_;
	my $port = $options{port} // PostgreSQL::Test::Cluster::get_free_port();
	my $log = "$work/$name.log";
	local %ENV = (%ENV, DATABASE_URL => database_url($role), LISTEN => "127.0.0.1:$port", %{ $env // {} });
	my $pid = start_process($log, @{ $options{launcher} // [] }, $binary);
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	until (-e $log && slurp_file($log) =~ /listening on/)
	{
		die "snowlink-http did not start: " . (-e $log ? slurp_file($log) : 'no log') . "\n"
		  if time > $deadline || waitpid($pid, POSIX::WNOHANG()) == $pid;
		Time::HiRes::sleep(0.05);
	}
	return { pid => $pid, log => $log, url => "http://127.0.0.1:$port" };
}

# request(URL, CURL_OPTION...): the response as curl gets it: { status, headers (by lower-case
# name), body, json (the body decoded, if it is JSON) }. Status 0: no response.
sub request
{
	my ($url, @options) = @_;
	my ($body, $errors) = ('', '');
	unlink "$work/headers";
	IPC::Run::run([ 'curl', '-s', '-D', "$work/headers", @options, $url ], '>', \$body, '2>', \$errors);
	my %response = (status => 0, headers => {}, body => $body);
	for my $line (split /\r?\n/, -e "$work/headers" ? slurp_file("$work/headers") : '')
	{
		if ($line =~ m{^HTTP/\S+ (\d+)}) { %response = (%response, status => $1, headers => {}) }
		elsif ($line =~ /^([^:]+):\s*(.*)$/) { $response{headers}{ lc $1 } = $2 }
	}
	$response{json} = eval { $json->decode($body) };
	return \%response;
}
sub status_of { request(@_)->{status} }
# said(RESPONSE): its body and status, as the checks below compare them.
sub said { "$_[0]{body} $_[0]{status}" }
# fields(RESPONSE, NAME...): the fields of its JSON object (strings as they are, anything else as
# JSON), and its status.
sub fields
{
	my ($response, @names) = @_;
	return join ' ',
	  (map { my $value = $response->{json}{$_}; defined $value && !ref $value ? $value : $json->encode($value) } @names),
	  $response->{status};
}
# api(SERVER, KEY, METHOD, PATH, BODY): a request with an API key (or the token) and a JSON body.
sub api
{
	my ($server, $key, $method, $path, $body) = @_;
	return request("$server->{url}$path", '-X', $method, '-H', "Authorization: Bearer $key",
		defined $body ? ('-H', 'Content-Type: application/json', '-d', $body) : ());
}

sub visits_of { sql($db, "SELECT visits FROM shortlink_stats('$_[0]')") }
# Waits for the visit writer (a visit shows within about a second) until CODE has VISITS visits.
sub wait_for_visits
{
	my ($code, $visits) = @_;
	my $deadline = time + $PostgreSQL::Test::Utils::timeout_default;
	Time::HiRes::sleep(0.05) until visits_of($code) == $visits || time > $deadline;
	return visits_of($code);
}
sub count_matches { my ($pattern, $text) = @_; scalar(() = $text =~ /$pattern/mg) }
# command_output(COMMAND...): what COMMAND prints, standard output and errors together.
sub command_output
{
	my $output = '';
	IPC::Run::run([@_], '>', \$output, '2>&1');
	return $output =~ s/\n\z//r;
}

note 'start-up';
{
	my $help = (run_server({}, '--help'))[1];
	is((run_server({}, '--version'))[1] =~ s/\n\z//r . ' ' . count_matches(qr/^  [A-Z_]+( |$)/m, $help),
		"snowlink-http $version 11", '--version names the version; --help lists every setting, and starts nothing');
	my ($exit, undef, $stderr) = run_server({}, '--port', '80');
	is("$exit " . count_matches(qr/settings come from the environment, see --help/, $stderr), '2 1',
		'an argument: exit code 2, and where settings come from');
	($exit, undef, $stderr) = run_server({});
	is("$exit " . count_matches(qr/DATABASE_URL is not set/, $stderr), '2 1',
		'without DATABASE_URL: exit code 2 and what is missing');
	($exit, undef, $stderr) = run_server({ DATABASE_URL => "host=127.0.0.1 port=1 dbname=$db user=redirects" });
	is("$exit " . count_matches(qr/cannot connect to the database of DATABASE_URL/, $stderr), '3 1',
		'database unreachable: exit code 3 and a clear error');
	($exit, undef, $stderr) = run_server({ DATABASE_URL => database_url('redirects', 'no_extension') });
	is("$exit " . count_matches(qr/run CREATE EXTENSION snowlink/, $stderr), '3 1',
		'no extension in the database: exit code 3, and how to fix it');
	($exit, undef, $stderr) = run_server({ DATABASE_URL => database_url('redirects'), SNOWLINK_HTTP_TOKEN => $token });
	is("$exit " . count_matches(qr/GRANT snowlink_user TO that role/, $stderr), '3 1',
		'a token for a role that may not shorten: exit code 3, and the grant it needs');
	($exit) = run_server({ DATABASE_URL => database_url('redirects'), LISTEN => '8080' });
	is($exit, 2, 'LISTEN without a port: exit code 2');
	($exit, undef, $stderr) =
	  run_server({ DATABASE_URL => database_url('redirects'), SNOWLINK_HTTP_PUBLIC_URL => 's.example.com' });
	is("$exit " . count_matches(qr/not an http or https URL of a host without a path/, $stderr), '2 1',
		'a public URL without a scheme: exit code 2, and what it must be');
	sql('http_old', "CREATE EXTENSION snowlink VERSION '0.2.0'");
	($exit, undef, $stderr) = run_server({ DATABASE_URL => database_url('redirects', 'http_old') });
	is("$exit " . count_matches(qr/needs 0.3.0 or later: run ALTER EXTENSION snowlink UPDATE/, $stderr), '3 1',
		'a database at snowlink 0.2.0: exit code 3, and the update to run');
}

my $redirects = start_http('http', 'redirects');
my $r = $redirects->{url};
# status_and(RESPONSE, HEADER): its status and the value of one header.
sub status_and { my ($response, $header) = @_; "$response->{status} " . ($response->{headers}{ lc $header } // '') }

note 'redirects';
is(status_and(request("$r/found"), 'Location'), '302 https://example.com/found', '302: Location');
is(status_and(request("$r/found"), 'Cache-Control'), '302 no-store', '302: not cached');
is(status_and(request("$r/moved"), 'Cache-Control'), '301 public, max-age=86400', '301: cached for a day');
is(status_and(request("$r/same-method"), 'Location'), '307 https://example.com/same-method', '307: Location');
like(status_and(request("$r/moved-308"), 'Cache-Control'), qr/^308 public, max-age=(\d+)$/, '308: cached until the link expires');
ok((status_and(request("$r/moved-308"), 'Cache-Control') =~ /(\d+)$/)[0] <= 3600, '308: within the hour');
is(status_and(request("$r/query"), 'Location'), '302 https://example.com/a?q=1&r=%C3%A4',
	'the URL as stored, query and percent-encoding kept');
my $head = request("$r/found", '--head');
is(status_and($head, 'Location'), '302 https://example.com/found', 'HEAD: the same status and Location');
is(command_output('curl', '-s', '--head', '-o', '/dev/null', '-w', '%{size_download}', "$r/found"), 0, 'HEAD: no body');
is(wait_for_visits('found', 4), 4, 'every GET and HEAD counts a visit');
is(status_and(request("$r/once"), 'Location'), '302 https://example.com/once', 'max_visits 1: the first visit redirects');
is(status_of("$r/once"), 404, 'max_visits 1: then 404');

note 'not found';
my $not_found = request("$r/unknown");
is(status_and($not_found, 'Content-Type') . ' ' . $not_found->{headers}{'cache-control'},
	'404 text/html; charset=utf-8 no-store', 'unknown code: 404, HTML, not cached');
like($not_found->{body}, qr{<h1>Link not found</h1>}, 'the 404 page says so');
is(status_of("$r/off"), 404, 'disabled link: 404');
is(status_of("$r/"), 404, 'the root: 404');
is(status_of("$r/found/more"), 404, 'a path deeper than a code: 404');
is(count_matches(qr/name="viewport" content="width=device-width/, $not_found->{body}) . ' '
	  . status_and($not_found, 'Content-Security-Policy'),
	"1 404 default-src 'none'; style-src 'unsafe-inline'",
	"the page fits a phone's screen and loads nothing else");

note 'a server whose role is not in snowlink_user only redirects';
is(said(request("$r/ids")),
	'{"error":{"code":"not_found","message":"this server only redirects: its database role is not in snowlink_user","sqlstate":null}} 404',
	'GET /ids: 404 in JSON');
is(status_of("$r/links", '-X', 'POST', '-d', '{"url": "https://example.com/"}'), 404, 'POST /links: 404');

note '/healthz and /readyz';
is(said(request("$r/healthz")), "ok\n 200", 'healthz: 200');
is(said(request("$r/readyz")), "ready\n 200", 'readyz: 200');

note 'codes that cannot be codes are not looked up';
# With the database stopped, a code that could exist gets 503, and one that cannot still 404.
$node->stop('fast');
is(status_of("$r/$_"), 404, "/$_: 404") for ('a' x 65, 'a.b', 'caf%C3%A9', 'a%20b', '%FF');

note 'the database goes away and comes back';
is(status_and(request("$r/found"), 'Retry-After'), '503 1', 'a code while the database is down: 503, Retry-After');
is(status_of("$r/healthz") . ' ' . (said(request("$r/readyz")) =~ s/\n//gr =~ s/(no database connection).* 503$/$1 503/r),
	'200 not ready: no database connection 503',
	'while the database is down, /healthz: 200 (the process answers), /readyz: 503 and why');
$node->start;
for (1 .. 50) { last if status_of("$r/found") == 302; Time::HiRes::sleep(0.1) }
is(status_and(request("$r/found"), 'Location'), '302 https://example.com/found', 'after the restart it redirects again');
like(slurp_file($redirects->{log}),
	qr/ INFO request\{id=[0-9a-f-]{36} method=GET path=\/found\}: snowlink_http::routes: answered status=302 ms=[0-9.]+$/m,
	'requests are logged on stderr, with their ID');

note 'the API: keys of two owners, a read-only key, a revoked one';
# Keys as an administrator makes them; each is shown once.
sub key_of { sql($db, "SELECT snowlink_api_key_create($_[0])") }
my $alice = key_of("'alice', note => 'alice''s app'");
my $bob = key_of("'bob'");
my $alice_reads = key_of("'alice', read_only => true");
my $revoked = key_of("'carol'");
my $api_port = PostgreSQL::Test::Cluster::get_free_port();
my $api_server = start_http('http-api', 'link_maker',
	{ SNOWLINK_HTTP_TOKEN => $token, SNOWLINK_HTTP_PUBLIC_URL => "http://127.0.0.1:$api_port" }, port => $api_port);
my $s = $api_server->{url};
is(count_matches(qr/, API on|SNOWLINK_HTTP_TOKEN is deprecated and goes in 0\.4\.0/, slurp_file($api_server->{log})), 2,
	'the server says the API is on, and that the token is deprecated');
my $response = request("$s/links");
is(said($response) . ' ' . ($response->{headers}{'www-authenticate'} // ''),
	'{"error":{"code":"unauthorized","message":"send Authorization: Bearer with an API key","sqlstate":null}} 401 Bearer',
	'no key: 401, WWW-Authenticate: Bearer, in the one error shape');
is(said(api($api_server, 'sl_0000', 'GET', '/links')),
	'{"error":{"code":"unauthorized","message":"API key is unknown or revoked","sqlstate":"28000"}} 401',
	"an unknown key: 401 with the database's SQLSTATE");
is(status_of("$s/links", '-H', "Authorization: Basic $alice"), 401, 'the key as Basic: 401');
my $made = api($api_server, $alice, 'POST', '/links',
	'{"url": "https://example.com/alice", "code": "alice-link", "title": "Spring sale", "tags": ["Sale", "spring"]}');
is(fields($made, qw(code url title tags owner short_url redirect_status disabled)) . ($made->{body} =~ /"id":"\d+"/ ? ' string ID' : ''),
	qq{alice-link https://example.com/alice Spring sale ["sale","spring"] alice $s/alice-link 302 false 201 string ID},
	'POST /links: 201, the link with its ID as a string, its owner and its public short URL');
is($made->{json}{id}, sql($db, "SELECT id FROM shortlinks WHERE code = 'alice-link'"), "the ID is the link's");
is(api($api_server, $alice, 'POST', '/links', '{"url": "https://example.com/alice"}')->{headers}{location} =~ s{/links/[0-9A-Za-z]{7}$}{/links/CODE}r,
	'/links/CODE', "201 has the link's place in the API");
is(status_and(request("$s/alice-link"), 'Location'), '302 https://example.com/alice', 'the new link redirects');
is(fields(api($api_server, $bob, 'POST', '/links',
			'{"url": "https://example.com/bob", "code": "bob-link", "expires_at": "2100-01-01T00:00:00Z", "valid_from": "2000-01-01T00:00:00Z", "max_visits": 3, "redirect_status": 308, "force_new": true}'),
		qw(owner expires_at valid_from max_visits redirect_status)),
	'bob 2100-01-01T00:00:00Z 2000-01-01T00:00:00Z 3 308 201', "bob's link, with every option");
{
	my $page = api($api_server, $alice, 'GET', '/links')->{json};
	my %owners = map { $_->{owner} => 1 } @{ $page->{links} };
	is(join(',', sort keys %owners) . " $page->{links}[-1]{code} " . $json->encode($page->{next}),
		'alice alice-link null', "GET /links: alice's links only, newest first");
}
is(join(' ', (map { status_of("$s/links/alice-link", '-X', $_, '-H', "Authorization: Bearer $bob", '-d', '{}') } qw(GET PATCH DELETE)),
		status_of("$s/links/alice-link/visits", '-H', "Authorization: Bearer $bob")),
	'404 404 404 404', "bob does not see alice's link: 404 for GET, PATCH, DELETE and its visits");
is(fields(api($api_server, $bob, 'GET', '/links?search=alice'), qw(links next)), '[] null 200', 'nor in his list');
api($api_server, $alice, 'POST', '/links', qq({"url": "https://example.com/page-$_", "code": "page-$_", "tags": ["pages"]}))
  for 1 .. 3;
{
	my $first = api($api_server, $alice, 'GET', '/links?tag=pages&limit=2')->{json};
	my $second = api($api_server, $alice, 'GET', "/links?tag=pages&limit=2&after=$first->{next}")->{json};
	is(join(' ', (map { $_->{code} } @{ $first->{links} }), '|', (map { $_->{code} } @{ $second->{links} }),
			$json->encode($second->{next})),
		'page-3 page-2 | page-1 null', 'pages: limit, and next as the cursor of the following page');
}
is(join(' ', map { $_->{code} } @{ api($api_server, $alice, 'GET', '/links?search=SPRING')->{json}{links} }),
	'alice-link', 'search matches code, URL or title in any case');
is(fields(api($api_server, $alice, 'GET', '/links/alice-link'), qw(code owner)), 'alice-link alice 200', 'GET /links/{code}');
is(fields(api($api_server, $alice, 'PATCH', '/links/alice-link',
			'{"url": "https://example.com/changed", "title": null, "max_visits": 10}'), qw(url title max_visits tags)),
	'https://example.com/changed null 10 ["sale","spring"] 200', 'PATCH: the fields given change, null clears, the rest stays');
is(request("$s/alice-link")->{headers}{location}, 'https://example.com/changed', 'the redirect follows the change');
is(join(' ', fields(api($api_server, $alice, 'PATCH', '/links/alice-link', '{"disabled": true}'), 'disabled'),
		status_of("$s/alice-link"), fields(api($api_server, $alice, 'PATCH', '/links/alice-link', '{"disabled": false}'), 'disabled')),
	'true 200 404 false 200', 'PATCH disabled: the link stops, and starts again');
is(said(api($api_server, $alice, 'PATCH', '/links/alice-link', '{"url": null}')),
	q({"error":{"code":"bad_request","message":"clear names columns that cannot be cleared: 'url'","sqlstate":"22023"}} 400),
	'PATCH with null for a field that cannot be cleared: 400 from shortlink_update()');
like(api($api_server, $alice, 'PATCH', '/links/alice-link', '{"code": "other"}')->{body},
	qr/unknown field `code`/, 'PATCH with an unknown field: 400 that names it');
{
	my $yesterday = POSIX::strftime('%F', gmtime(time - 86400));
	# Its two redirects, once the visit writer has written them.
	wait_for_visits('alice-link', 2);
	my $visits = api($api_server, $alice, 'GET', "/links/alice-link/visits?from=$yesterday")->{json};
	is(join(' ', $visits->{visits}, $visits->{days}[0]{visits}, scalar @{ $visits->{days} }),
		'2 0 2', 'the visits: in all, and per day from the day asked');
}
is(said(api($api_server, $alice, 'GET', '/links/alice-link/visits?from=yesterday-ish')),
	'{"error":{"code":"bad_request","message":"invalid input syntax for type date: \"yesterday-ish\"","sqlstate":"22007"}} 400',
	'visits from a day that is not a date: 400');
is(fields(api($api_server, $alice_reads, 'GET', '/links/alice-link'), 'owner'), 'alice 200',
	"the read-only key reads alice's links");
is(join(' ', said(api($api_server, $alice_reads, 'POST', '/links', '{"url": "https://example.com/"}')),
		api($api_server, $alice_reads, 'PATCH', '/links/alice-link', '{"title": "x"}')->{status},
		api($api_server, $alice_reads, 'DELETE', '/links/alice-link')->{status}),
	'{"error":{"code":"forbidden","message":"this API key is read-only","sqlstate":null}} 403 403 403',
	'the read-only key cannot write: 403 for POST, PATCH and DELETE');
is(join(' ', api($api_server, $revoked, 'GET', '/links')->{status},
		sql($db, "SELECT snowlink_api_key_revoke(id) FROM snowlink_api_keys WHERE owner = 'carol'"),
		api($api_server, $revoked, 'GET', '/links')->{status}),
	'200 t 401', 'a key works until it is revoked, and is refused at once after');
is(join(' ', said(api($api_server, $alice, 'DELETE', '/links/page-1')), status_of("$s/page-1"),
		api($api_server, $alice, 'GET', '/links/page-1')->{status}),
	' 204 404 404', 'DELETE: 204, then the code does not resolve, and the link is gone');
is(said(api($api_server, $alice, 'GET', '/links/page-2/more/still')),
	'{"error":{"code":"not_found","message":"no route /links/page-2/more/still","sqlstate":null}} 404',
	'a path no route takes under /links: 404 in JSON');
is(said(api($api_server, $alice, 'PUT', '/links')),
	'{"error":{"code":"method_not_allowed","message":"this path does not take this method","sqlstate":null}} 405',
	'a method a route does not take: 405 in JSON');
is(said(api($api_server, $alice, 'POST', '/links', '{"url": "https://example.com/' . ('a' x 70000) . '"}')),
	'{"error":{"code":"payload_too_large","message":"the body is larger than 65536 bytes, or was cut off","sqlstate":null}} 413',
	'a body over 64 KiB: 413');

note '/ids';
{
	my $ids = api($api_server, $alice, 'GET', '/ids?n=1000');
	my %distinct = map { $_ => 1 } @{ $ids->{json} };
	my @numbers = grep { !/^\d+$/ || $_ <= 2**53 } @{ $ids->{json} };
	is(scalar(keys %distinct) . ' ' . scalar(@numbers) . ' ' . ($ids->{body} =~ /^\["\d+"(,"\d+")*\]$/ ? 'strings' : 'not strings'),
		'1000 0 strings', 'n=1000: a JSON array of 1000 distinct IDs as strings');
	is(sql($db, "SELECT count(*) FROM json_array_elements_text('$ids->{body}') AS id
	             WHERE snowflake_timestamp(id::bigint) BETWEEN now() - interval '1 minute' AND clock_timestamp()"),
		1000, 'IDs are snowflake IDs of this server');
}
is(scalar @{ api($api_server, $alice, 'GET', '/ids')->{json} }, 1, 'no n: one ID');
is(api($api_server, $alice_reads, 'GET', '/ids')->{status}, 200, 'a read-only key gets IDs too');
is(status_of("$s/ids"), 401, 'no key: 401');
for my $n (qw(0 1001 -1 abc 1.5))
{
	is(said(api($api_server, $alice, 'GET', "/ids?n=$n")),
		qq({"error":{"code":"bad_request","message":"n must be a whole number from 1 to 1000, not \\"$n\\"","sqlstate":null}} 400),
		"n=$n: 400 with the rule");
}

note 'QR codes';
# read_qr(FILE): the text of the QR code in the image FILE.
sub read_qr
{
	my $text = '';
	IPC::Run::run([ 'zbarimg', '-q', '--raw', $_[0] ], '>', \$text, '2>', '/dev/null');
	return $text =~ s/\n\z//r;
}
{
	my $svg = request("$s/page-2/qr.svg", '-o', "$work/qr.svg");
	is(status_and($svg, 'Content-Type') . ' ' . read_qr("$work/qr.svg"), "200 image/svg+xml $s/page-2",
		"SVG: 200, and zbarimg reads the link's short URL");
	my $png = request("$s/page-2/qr.png?size=400", '-o', "$work/qr.png");
	my ($signature, $width) = unpack 'a8 x8 N', slurp_file("$work/qr.png");
	is(join(' ', status_and($png, 'Content-Type'), read_qr("$work/qr.png"), $signature eq "\x89PNG\r\n\x1a\n" ? 'PNG' : 'not PNG',
			$width <= 400 ? 'fits' : "$width wide"),
		"200 image/png $s/page-2 PNG fits", 'PNG of the size asked: 200, and zbarimg reads it');
}
is(visits_of('page-2'), 0, 'a QR code counts no visit');
is(said(request("$s/page-2/qr.png?size=10000")),
	'{"error":{"code":"bad_request","message":"size must be from 64 to 2048 pixels, not 10000","sqlstate":null}} 400',
	'a size out of range: 400');
is(join(' ', map { status_of("$s/$_") } qw(unknown/qr.svg page-1/qr.png off/qr.svg)), '404 404 404',
	'codes that do not resolve (unknown, deleted, disabled): 404');
is(said(request("$r/found/qr.svg")),
	'{"error":{"code":"not_found","message":"links of the default domain have no public URL: set SNOWLINK_HTTP_PUBLIC_URL","sqlstate":null}} 404',
	"without SNOWLINK_HTTP_PUBLIC_URL, the default domain's links have no QR code: 404 that says what to set");

note 'domains, and a rate limit';
api($api_server, $alice, 'POST', '/links', '{"url": "https://example.com/shop-sale", "code": "sale", "domain": "Shop.Example"}');
api($api_server, $alice, 'POST', '/links', '{"url": "https://example.com/default-sale", "code": "sale"}');
my $custom_page = "<!doctype html><title>Gone</title><p>Our own page\n";
PostgreSQL::Test::Utils::append_to_file("$work/custom-404.html", $custom_page);
my $domains = start_http('http-domains', 'link_maker', {
	SNOWLINK_HTTP_PUBLIC_URL => 'https://go.example',
	SNOWLINK_HTTP_DOMAINS => 'shop.example,other.example',
	SNOWLINK_HTTP_RATE_LIMIT => 3,
	SNOWLINK_HTTP_NOT_FOUND_PAGE => "$work/custom-404.html" });
my $d = $domains->{url};
is(status_and(request("$d/sale", '-H', 'Host: SHOP.example'), 'Location'), '302 https://example.com/shop-sale',
	'a listed host: the link of its domain');
is(status_and(request("$d/sale", '-H', 'Host: go.example'), 'Location'), '302 https://example.com/default-sale',
	"the public URL's host: the link of the default domain");
is(status_of("$d/sale", '-H', 'Host: other.example'), 404, 'a listed host without the code: 404');
is(said(request("$d/sale", '-H', 'Host: elsewhere.example')), "$custom_page 421", 'a host not listed: 421 with the page');
is(said(request("$d/unknown", '-H', 'Host: go.example')), "$custom_page 404",
	'SNOWLINK_HTTP_NOT_FOUND_PAGE: the page of links that do not resolve, as it is');
is(request("$s/sale", '-H', 'Host: shop.example')->{headers}{location}, 'https://example.com/default-sale',
	'without SNOWLINK_HTTP_DOMAINS every host is the default domain');
request("$d/sale/qr.svg", '-H', 'Host: shop.example', '-o', "$work/qr-domain.svg");
is(read_qr("$work/qr-domain.svg"), 'https://shop.example/sale', "the QR code of a domain's link has the domain's URL");
is(fields(api($domains, $alice, 'GET', '/links/sale?domain=shop.example'), qw(domain short_url)),
	'shop.example https://shop.example/sale 200', "a domain's link in the API: ?domain=, and its short URL");
is(said(api($domains, $alice, 'GET', '/links?domain=a/b')),
	'{"error":{"code":"bad_request","message":"domain \"a/b\" is not a host with an optional port, such as s.example.com or localhost:8080","sqlstate":"22023"}} 400',
	'a domain that is not a host: 400 from the database');
{
	my @writes = map { api($domains, $bob, 'POST', '/links', '{"url": "https://example.com/limited"}') } 1 .. 4;
	my $retry_after = $writes[-1]{headers}{'retry-after'} // 0;
	is(join(' ', (map { $_->{status} } @writes), $retry_after >= 1 && $retry_after <= 60 ? 'Retry-After' : "Retry-After: $retry_after",
			api($domains, $bob, 'GET', '/links')->{status}),
		'201 201 201 429 Retry-After 200', '3 writes a minute: the fourth gets 429 with Retry-After, and reads go on');
}
is(api($domains, $alice, 'POST', '/links', '{"url": "https://example.com/limited"}')->{status}, 201,
	'the limit is per key: another key writes');

note 'the OpenAPI document';
request("$s/openapi.json", '-o', "$work/openapi.json");
is(command_output($openapi_python, '-c', 'import json, sys
from openapi_spec_validator import validate
document = json.load(open(sys.argv[1]))
validate(document)
print(document["openapi"])', "$work/openapi.json"), '3.1.0', 'openapi-spec-validator accepts it as OpenAPI 3.1');
{
	my $paths = $json->decode(slurp_file("$work/openapi.json"))->{paths};
	# Every route that this test calls, as the router serves it.
	is(join(' ', sort map { my $path = $_; map { uc($_) . " $path" } keys %{ $paths->{$path} } } keys %$paths),
		'DELETE /links/{code} GET /healthz GET /ids GET /links GET /links/{code} GET /links/{code}/visits GET /metrics GET /openapi.json GET /readyz GET /{code} GET /{code}/qr.png GET /{code}/qr.svg PATCH /links/{code} POST /links',
		'it has every route the server serves, and no other');
}

note 'the deprecated token: the role of DATABASE_URL, as its own owner';
is(api($api_server, "${token}x", 'POST', '/links', '{"url": "https://example.com/"}')->{status}, 401, 'a wrong token: 401');
is(fields(api($api_server, $token, 'POST', '/links', '{"url": "https://example.com/new", "code": "new-link", "redirect_status": 308}'),
		qw(code url redirect_status owner expires_at)),
	'new-link https://example.com/new 308 link_maker null 201', '201 with the link, owned by the role itself');
is(status_and(request("$s/new-link"), 'Location'), '308 https://example.com/new', 'the new link redirects');
is(api($api_server, $alice, 'GET', '/links/new-link')->{status}, 404, "no key's owner sees it");
sub refused { said(api($api_server, $token, 'POST', '/links', $_[0])) }
is(refused('{"url": "javascript:alert(1)"}'),
	'{"error":{"code":"bad_request","message":"URL scheme \"javascript\" is not allowed","sqlstate":"22023"}} 400',
	"a refused URL: 400 with shorten()'s message and SQLSTATE");
is(refused('{"url": "https://example.com/other", "code": "new-link"}'),
	'{"error":{"code":"conflict","message":"custom code \"new-link\" is already taken","sqlstate":"23505"}} 409',
	'a taken code: 409');
is(refused('{"url": "https://example.com/", "code": "ids"}'),
	'{"error":{"code":"bad_request","message":"custom code \"ids\" is an endpoint of snowlink-http","sqlstate":"22023"}} 400',
	'a code that is an endpoint: 400');
is(refused('{"url": "https://example.com/", "code": "Admin"}'),
	'{"error":{"code":"bad_request","message":"custom code \"Admin\" is reserved","sqlstate":"22023"}} 400',
	'a reserved code: 400');
is(refused('{"url": "https://example.com/", "redirect_status": 303}'),
	'{"error":{"code":"bad_request","message":"redirect_status must be 301, 302, 307 or 308, not 303","sqlstate":"22023"}} 400',
	'a bad status: 400');
is(refused('{"url": "https://example.com/", "expires_at": "tomorrow-ish"}'),
	'{"error":{"code":"bad_request","message":"invalid input syntax for type timestamp with time zone: \"tomorrow-ish\"","sqlstate":"22007"}} 400',
	'a bad time: 400');
is(refused('url=https://example.com/') =~ s/: expected .*sqlstate/ sqlstate/r,
	q({"error":{"code":"bad_request","message":"the body is not a JSON object of this route's fields sqlstate":null}} 400),
	'not JSON: 400');
like(refused('{"url": "https://example.com/", "colour": "red"}'), qr/unknown field `colour`/, 'an unknown field: 400 that names it');
like(refused('{"code": "x"}'), qr/missing field `url`/, 'no url: 400');

note 'logs and metrics';
my $metrics_port = PostgreSQL::Test::Cluster::get_free_port();
my $observed = start_http('http-json', 'link_maker',
	{ SNOWLINK_HTTP_LOG_FORMAT => 'json', METRICS_LISTEN => "127.0.0.1:$metrics_port" });
my $o = $observed->{url};
# A scripted mix of requests, each counted below.
request("$o/found") for 1 .. 5;
request("$o/moved") for 1 .. 3;
request("$o/unknown") for 1 .. 2;
api($observed, $alice, 'POST', '/links', '{"url": "https://example.com/metered"}');
request("$o/links") for 1 .. 2;
api($observed, 'sl_unknown', 'GET', '/links');
is(join(' ', request("$o/found", '-H', 'X-Request-Id: checkout-42')->{headers}{'x-request-id'},
		request("$o/found")->{headers}{'x-request-id'} =~ /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/ ? 'new' : 'none'),
	'checkout-42 new', "X-Request-Id: the client's is returned, and a new one is made when there is none");
my $metrics = request("http://127.0.0.1:$metrics_port/metrics")->{body};
{
	my $output = '';
	IPC::Run::run([ 'promtool', 'check', 'metrics' ], '<', \$metrics, '>', \$output, '2>&1');
	is("exit $?", 'exit 0', 'promtool check metrics accepts /metrics') or diag($output);
}
# metric(NAME, LABEL => VALUE, ...): the value of the one sample with exactly those labels.
sub metric
{
	my ($name, %wanted) = @_;
	my $wanted = join ',', map { qq($_="$wanted{$_}") } sort keys %wanted;
	for my $line (split /\n/, $metrics)
	{
		my ($metric, $labels, $value) = $line =~ /^([a-z_]+)(?:\{(.*)\})? (\S+)$/ or next;
		next unless $metric eq $name;
		my %labels = ($labels // '') =~ /([a-z_]+)="((?:[^"\\]|\\.)*)"/g;
		return $value if join(',', map { qq($_="$labels{$_}") } sort keys %labels) eq $wanted;
	}
	return 'none';
}
is(join(' ', map { metric('snowlink_http_requests_total', @$_) } [ route => '/{code}', method => 'GET', status => 302 ],
		[ route => '/{code}', method => 'GET', status => 301 ], [ route => '/{code}', method => 'GET', status => 404 ],
		[ route => '/links', method => 'POST', status => 201 ], [ route => '/links', method => 'GET', status => 401 ]),
	'7 3 2 1 3', 'requests by route, method and status');
is(join(' ', map { metric('snowlink_http_redirects_total', status => $_) } 302, 301, 404), '7 3 2', 'redirects by status, and 404s');
is(metric('snowlink_http_request_duration_seconds_count', route => '/{code}') . ' '
	  . metric('snowlink_http_request_duration_seconds_bucket', route => '/{code}', le => '+Inf'),
	'12 12', 'a latency histogram per route');
is(metric('snowlink_http_db_errors_total', class => 28), 1, "database errors by SQLSTATE class: the unknown key's 28000");
{
	chomp(my $cpus = `nproc`);
	is(join(' ', metric('snowlink_http_db_pool_max_connections'), metric('snowlink_http_db_pool_connections') >= 1 ? 1 : 0,
			metric('snowlink_http_db_pool_connections_in_use'), metric('snowlink_http_db_pool_wait_seconds_count') >= 12 ? 1 : 0),
		4 * $cpus . ' 1 0 1', 'the pool: its size, connections open and in use, time waited for one');
}
is(metric('snowlink_http_build_info', version => $version), 1, "the build's version");
is(status_of("$o/metrics") . ' ' . status_of("http://127.0.0.1:$metrics_port/found"), '404 404',
	'with METRICS_LISTEN, /metrics is not served with the other routes');
is(status_of("$s/metrics"), 200, "without it, it is: the API server's /metrics");
{
	my @lines = split /\n/, slurp_file($observed->{log});
	my @objects = grep { ref eq 'HASH' } map { eval { $json->decode($_) } } @lines;
	is(scalar @objects, scalar @lines, 'JSON logs: every line is a JSON object');
	my @mine = grep { ($_->{span}{id} // '') eq 'checkout-42' } @objects;
	my $line = $mine[0] // {};
	is(join(' ', scalar @mine, map { $_ // 'none' } $line->{level}, $line->{span}{method}, $line->{span}{path},
			$line->{fields}{status}),
		'1 INFO GET /found 302', "each request's line has its ID, method, path and status");
}
is(said(request("$o/readyz")), "ready\n 200", '/readyz: ready');

note 'the monitoring files of docs/operations.md';
like(command_output('promtool', 'check', 'rules', "$source/docs/monitoring/snowlink-alerts.yml"),
	qr/SUCCESS: 10 rules found/, 'promtool check rules accepts the alert rules');
# Each query of the postgres_exporter file, as a role in snowlink_user: one row, and every column
# the file names.
is(command_output('python3', '-c', 'import subprocess, sys, yaml
queries = yaml.safe_load(open(sys.argv[1]))
for name, query in sorted(queries.items()):
    result = subprocess.run(["psql", "-X", "-A", "-F", "|", "-P", "footer=off", "-d", sys.argv[2],
                             "-v", "ON_ERROR_STOP=1", "-c", query["query"]],
                            capture_output=True, text=True)
    lines = result.stdout.splitlines()
    columns = [list(metric)[0] for metric in query["metrics"]]
    wanted = lines[0].split("|") == columns if lines else False
    rows = [line for line in lines[1:] if line.strip()]
    print(name, result.returncode, wanted, len(rows) >= 1)', "$source/docs/monitoring/postgres_exporter-queries.yaml",
		database_url('link_maker')),
	"snowflake_node_status 0 True True\nsnowlink_visit_writers 0 True True",
	'every postgres_exporter query runs as a role in snowlink_user, with the columns it names');

note 'the examples of docs/http.md';
{
	# The block after the marker in "Serving redirects over HTTP", run as it is with S and KEY set.
	my ($block) = slurp_file("$source/docs/http.md") =~ /^<!-- t\/http\.pl runs this block -->\n```sh\n(.*?)^```$/ms;
	mkdir "$work/readme";
	my $output = '';
	{
		local %ENV = (%ENV, S => $s, KEY => $alice);
		IPC::Run::run([ 'bash', '-e', '-c', $block ], '>', \$output, '2>&1', init => sub { chdir "$work/readme" });
	}
	is("exit $? " . count_matches(qr/^curl/m, $block), 'exit 0 11', 'every curl of docs/http.md succeeds') or diag($output);
	is(count_matches(qr{302 https://example\.com/spring-sale$}m, $output) . ' ' . read_qr("$work/readme/spring.png"),
		"1 $s/spring", 'its redirect and its QR code are those of the link');
	is(sql($db, "SELECT count(*) FROM shortlinks WHERE code = 'spring'"), 0, 'and it deleted the link it made');
}

note 'at the edge: requests that a browser never sends';
sub edge { command_output('python3', "$source/scripts/http_edge.py", @_) }
is(edge('smuggle', $api_port), '1 400 closed',
	'Content-Length and Transfer-Encoding: 400, and nothing after it on the connection is served');
is(said(request("$s/links", '-X', 'POST', '-H', "Authorization: Bearer $token", '-H', 'Transfer-Encoding: chunked',
			'-d', '{"url": "https://example.com/chunked"}')),
	'{"error":{"code":"bad_request","message":"Transfer-Encoding is not accepted: send the body with Content-Length","sqlstate":null}} 400',
	'a chunked body: 400 that says to send Content-Length');
is(edge('stalled-uploads', $api_port, 300, $api_server->{pid}) =~ s/ \([0-9-]+ MB\)$//r,
	'401s 300, growth under 100 MB: yes', '300 uploads without the token that stall: 401 at once, none of their bodies kept');
is(edge('slow-body', $api_port, $token), 408, 'an upload with the token whose body stops coming: 408');
# A server with 1024 file descriptors, and more half-open connections than that.
my $edge_server = start_http('http-edge', 'redirects', {}, launcher => [qw(prlimit --nofile=1024:1024 --)]);
my ($edge_port) = $edge_server->{url} =~ /(\d+)$/;
is(edge('half-open', $edge_port, 1100), 'all 302', '1,100 connections that never finish their head are closed, then a client is served');
# With shortlinks locked, no request waits longer than the database timeout, and the pool's
# connections are free again afterwards.
{
	my $locker = psql_start($node, $db, 'BEGIN; LOCK TABLE shortlinks IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(12); COMMIT');
	$node->poll_query_until($db, "SELECT count(*) = 1 FROM pg_locks
	    WHERE relation = 'shortlinks'::regclass AND mode = 'AccessExclusiveLock' AND granted")
	  or die 'the lock was not taken';
	is(edge('parallel', $edge_port, 12, '/found'), '503 ' x 12 . 'within 15 s', 'shortlinks locked: 12 requests at once all get 503, within 15 s');
	psql_finish($locker);
}
is(status_of("$edge_server->{url}/found"), 302, 'the lock gone, it redirects again');
# SIGTERM while an upload stalls: the server stops once the request's time is up.
{
	my $uploader = start_process("$work/uploader.log", 'python3', "$source/scripts/http_edge.py", 'slow-body', $api_port, $token);
	Time::HiRes::sleep(0.5);
	my $started = time;
	my $code = stop_process($api_server->{pid}, 'TERM');
	is("$code " . (time - $started <= 20 ? 'in time' : 'late'), '0 in time', 'SIGTERM with a request in flight: exit code 0 within 20 s');
	stop_process($uploader, 'TERM');
}

note 'a browser follows a short link';
mkdir "$work/pages";
PostgreSQL::Test::Utils::append_to_file("$work/pages/landed.html", q{<!doctype html>
<html><head><title>landed</title></head>
<body><p id="where"></p><script>document.getElementById('where').textContent = 'landed on ' + location.href;</script></body></html>
});
start_process("$work/pages.log", 'python3', '-m', 'http.server', $page_port, '--bind', '127.0.0.1', '--directory', "$work/pages");
for (1 .. 50) { last if status_of("http://127.0.0.1:$page_port/landed.html") == 200; Time::HiRes::sleep(0.1) }
# chromium(LOG, OPTION..., URL): the DOM of the page, once loaded. The sandbox needs user namespaces
# that containers often lack; the other flags keep it off the network it cannot reach.
sub chromium
{
	my ($log, @arguments) = @_;
	my $dom = '';
	IPC::Run::run([ 'chromium', '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
			'--disable-background-networking', '--disable-component-update', '--disable-sync',
			"--user-data-dir=$work/chromium-profile", '--virtual-time-budget=5000', '--dump-dom', @arguments ],
		'>', \$dom, '2>', "$work/$log", IPC::Run::timeout(60));
	return $dom;
}
{
	my $before = visits_of('browser');
	my ($landed) = chromium('chromium.log', "$r/browser") =~ m{<p id="where">([^<]*)</p>};
	is($landed, "landed on http://127.0.0.1:$page_port/landed.html", 'Chromium lands on the target page');
	is(wait_for_visits('browser', $before + 1), $before + 1, "the browser's visit is counted");
}
# The 404 page as a phone shows it: 390 pixels wide.
like(chromium('chromium-404.log', '--window-size=390,844', '--run-all-compositor-stages-before-draw', "$r/unknown"),
	qr{<h1>Link not found</h1>}, 'Chromium shows the 404 page');

note 'shutdown';
is(stop_process($redirects->{pid}, 'TERM') . ' ' . count_matches(qr/shutting down|stopped/, slurp_file($redirects->{log})),
	'0 2', 'SIGTERM: exit code 0 after shutting down');

done_testing();
