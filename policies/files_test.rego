# Tests for files.rego: credential paths on file tools (read/write/edit/
# apply_patch/view_image/pdf) and writes into system directories.
package clawgate

import rego.v1

read_path(p, env) := decide(tool_call("read", {"path": p}, env))

test_sensitive_entries_are_complete if {
	every _, e in data.clawgate.paths.sensitive {
		startswith(e.id, "cred.")
		e.reason != ""
	}
	every _, e in data.clawgate.paths.sensitive_names {
		startswith(e.id, "cred.")
		e.reason != ""
	}
	every _, loc in data.clawgate.paths.sensitive_segments {
		data.clawgate.paths.sensitive[loc]
	}
	regex.is_valid(data.clawgate.paths.key_name_pattern)
	regex.is_valid(data.clawgate.paths.backup_suffix)
	every e in data.clawgate.paths.sensitive_name_patterns {
		startswith(e.id, "cred.")
		is_string(e.hint)
		e.reason != ""
		regex.is_valid(e.pattern)
	}
}

# Copies under backup names, .env files of any stage, kubeconfig files and cloud
# key files hold the secrets their families do; templates and public keys do not.
test_secret_file_families_and_backups_are_denied if {
	every p in [
		".env.qa", "app/.env.uat", ".env.bak", ".env.prod.bak", ".env~", ".env.swp", "prod.env", "deploy/secrets.env",
		"id_rsa.bak", "~/.ssh-backup/id_ed25519.orig", "keys/id_rsa~", ".netrc.bak", "~/.npmrc.old", ".pgpass~",
		"server.key.orig", "terraform.tfstate.1234.backup", "kubeconfig", "ops/prod.kubeconfig", "kubeconfig.yaml",
		"credentials.json", "service-account.json", "gcp-key.json", "sa-key.json",
		"client_secret_123.apps.googleusercontent.com.json",
	] {
		read_path(p, "production").effect == "deny"
	}
	every p in [
		".env.example", ".env.sample.bak", ".env.dist", "id_rsa.pub", "src/env.ts", "environment.prod.ts",
		"package.json", "keys.json", "docs/kubeconfig.md", "backup.sh", "notes.txt.bak",
	] {
		read_path(p, "production").effect == "allow"
	}
}

test_credential_paths_denied_on_read if {
	every p in [
		"~/.ssh/id_rsa", "/home/dev/.ssh/config", "/root/.ssh/authorized_keys", "keys/id_ed25519",
		".env", "app/.env", "/srv/app/.env.production", ".env.local", ".envrc",
		"~/.aws/credentials", "/home/u/.aws/config", "~/.config/gcloud/application_default_credentials.json",
		"~/.kube/config", "~/.npmrc", "/home/u/.netrc", "~/.pypirc", "~/.git-credentials", "~/.pgpass",
		"~/.docker/config.json", "~/.config/gh/hosts.yml", "~/.gnupg/private-keys-v1.d/x.key",
		"certs/server.key", "tls/tls-key.pem", "secrets/service-account-private-key.json", "store.p12",
		"/etc/shadow", "/etc/sudoers", "~/.openclaw/credentials/oauth.json", "~/.openclaw/gateway.token",
		"~/.openclaw/agents/main/agent/auth-profiles.json", "~/.azure/msal_token_cache.json",
		"~/.config/rclone/rclone.conf", "~/.m2/settings.xml", "~/.gradle/gradle.properties", "~/.config/hub",
		"/etc/ssh/ssh_host_ed25519_key", "/etc/ssh/ssh_host_rsa_key",
		"wp-config.php", "/var/www/html/wp-config.php", "config/secrets.yml", "secrets.json", "local.settings.json",
		".htpasswd", "~/.microsoft/usersecrets/0f3c/secrets.json", "/etc/wpa_supplicant/wpa_supplicant.conf",
		"/etc/mysql/debian.cnf", "/etc/ldap.secret", "myapp-firebase-adminsdk-x1y2z.json", "~/.dbshell",
		"~/.mongosh/mongosh_repl_history", "~/.sbt/credentials", "~/.config/tea/config.yml", "~/.aider.conf.yml",
		"~/.config/anthropic/credentials",
	] {
		d := read_path(p, "development")
		d.effect == "deny"
		d.risk == "critical"
	}
}

test_credential_reason_is_actionable if {
	d := read_path("~/.ssh/id_rsa", "production")
	fired(d, "cred.ssh")
	fired(d, "cred.ssh_key")
	some r in d.reasons
	contains(r, "~/.ssh/id_rsa")
	contains(r, "denied in production")
}

test_credential_near_misses_allowed if {
	every p in [
		".env.example", "config/.env.sample", ".env.template", "src/environment.ts", "docs/ssh.md",
		"src/crypto/private_key.rs", "certs/ca-cert.pem", "keyboard.rs", "README.md", "aws/credentials.md",
		"kube/configmap.yaml", "/etc/hosts", "src/.envoy.yaml", "/etc/ssh/sshd_config",
		"/etc/ssh/ssh_host_ed25519_key.pub", "~/.gradle/init.gradle", "~/.m2/repository/x.pom",
		"~/.ssh/id_ed25519.pub", "/home/dev/.ssh/*.pub",
	] {
		d := read_path(p, "production")
		d.effect == "allow"
	}

	# Public keys only: the rest of ~/.ssh, a backup of a .pub, a glob that could reach a key.
	every p in ["~/.ssh/known_hosts", "~/.ssh/config", "~/.ssh/id_rsa.pub.bak", "~/.ssh/id_rsa[.]pub", "~/.ssh/*", "~/.ssh"] {
		read_path(p, "production").effect == "deny"
	}
	decide(exec_call("echo key >> ~/.ssh/authorized_keys", "development")).effect == "deny"
}

test_file_path_alias_is_checked if {
	d := decide(tool_call("read", {"file_path": "/home/u/.ssh/id_rsa"}, "development"))
	d.effect == "deny"
}

test_windows_paths_are_checked if {
	d := read_path("C:\\Users\\dev\\.ssh\\id_rsa", "development")
	d.effect == "deny"
	fired(d, "cred.ssh")
}

test_write_to_credentials_denied if {
	d := decide(tool_call("write", {"path": ".env", "content": "API_KEY=x"}, "development"))
	d.effect == "deny"
	fired(d, "cred.dotenv")
}

test_edit_authorized_keys_denied if {
	d := decide(tool_call("edit", {"path": "/home/u/.ssh/authorized_keys", "edits": [{"oldText": "a", "newText": "b"}]}, "development"))
	d.effect == "deny"
}

test_apply_patch_paths_are_checked if {
	patch := "*** Begin Patch\n*** Update File: src/main.rs\n@@\n-a\n+b\n*** Add File: deploy/.env.production\n+TOKEN=x\n*** End Patch"
	d := decide(tool_call("apply_patch", {"input": patch}, "development"))
	d.effect == "deny"
	fired(d, "cred.dotenv")
	some r in d.reasons
	contains(r, "deploy/.env.production")
}

test_apply_patch_move_target_is_checked if {
	patch := "*** Begin Patch\n*** Update File: notes/key.txt\n*** Move to: /home/u/.ssh/authorized_keys\n@@\n+ssh-ed25519 AAAA\n*** End Patch"
	effect_of(tool_call("apply_patch", {"input": patch}, "development")) == "deny"
}

test_apply_patch_delete_is_checked if {
	patch := "*** Begin Patch\n*** Delete File: ~/.kube/config\n*** End Patch"
	effect_of(tool_call("apply_patch", {"input": patch}, "development")) == "deny"
}

test_apply_patch_clean_patch_allowed_in_development if {
	patch := "*** Begin Patch\n*** Add File: src/new.rs\n+pub fn f() {}\n*** Delete File: src/old.rs\n*** End Patch"
	d := decide(tool_call("apply_patch", {"input": patch}, "development"))
	d.effect == "allow"
	{p.raw | some p in with_facts(tool_call("apply_patch", {"input": patch}, "development")).facts.paths} == {"src/new.rs", "src/old.rs"}
}

test_apply_patch_without_input if {
	effect_of(tool_call("apply_patch", {}, "production")) == "require_approval"
	effect_of(tool_call("apply_patch", {}, "development")) == "allow"
}

test_view_image_paths_array_is_checked if {
	d := decide(tool_call("view_image", {"paths": ["shots/a.png", "/home/u/.ssh/id_rsa"]}, "development"))
	d.effect == "deny"
	effect_of(tool_call("view_image", {"paths": ["shots/a.png", "shots/b.png"]}, "production")) == "allow"
}

test_pdf_path_is_checked if {
	effect_of(tool_call("pdf", {"pdf": "/home/u/.gnupg/secring.gpg"}, "development")) == "deny"
	effect_of(tool_call("pdf", {"pdfs": ["docs/a.pdf"]}, "production")) == "allow"
}

test_governance_files_protected if {
	every p in ["~/.openclaw/openclaw.json", "~/.openclaw/exec-approvals.json", "/etc/clawgate/clawgate.toml"] {
		d := decide(tool_call("write", {"path": p, "content": "{}"}, "development"))
		d.effect == "deny"
		fired(d, "cred.governance")
	}
}

test_system_path_write_needs_approval_everywhere if {
	d := decide(tool_call("write", {"path": "/etc/hosts", "content": "127.0.0.1 x"}, "development"))
	d.effect == "require_approval"
	d.risk == "high"
	fired(d, "fs.system_path")
	effect_of(tool_call("edit", {"path": "/usr/local/bin/tool", "edits": []}, "development")) == "require_approval"
	effect_of(tool_call("write", {"path": "C:\\Windows\\System32\\drivers\\etc\\hosts"}, "development")) == "require_approval"
}

# An operand a command writes is a write like a redirection: a copy's destination,
# every operand of truncate/rm/sed -i, a -t/--target-directory directory; a copy's
# source in a system directory is only read.
test_system_paths_written_by_command_operands_need_approval_everywhere if {
	every cmd in [
		"cp x /etc/hosts", "truncate -s0 /etc/passwd", "install -m755 x /usr/local/bin/git", "sed -i s/a/b/ /etc/hosts",
		"rm /var/log/syslog", "truncate -s 0 /var/log/auth.log", "cp -t /usr/bin x", "mv --target-directory=/usr/lib x.so",
		"setcap cap_setuid+ep /usr/bin/python3",
	] {
		d := decide(exec_call(cmd, "development"))
		d.effect == "require_approval"
		fired(d, "fs.system_path")
	}
	every cmd in ["cp /etc/nginx/nginx.conf ./nginx.conf", "ln -s /usr/bin/python3 ./py", "cp -r /etc/skel ./skel", "sed -n 1p /etc/hosts"] {
		not fired(decide(exec_call(cmd, "development")), "fs.system_path")
	}
}

test_system_path_read_allowed if {
	d := read_path("/etc/hosts", "production")
	d.effect == "allow"
	not fired(d, "fs.system_path")
}

test_system_path_rule_not_applied_to_exec_workdir if {
	d := decide(tool_call("exec", {"command": "ls", "workdir": "/etc"}, "production"))
	d.effect == "allow"
}

test_credential_effect_is_data_driven if {
	d := decision with input as with_facts(tool_call("read", {"path": ".env"}, "development"))
		with data.clawgate.credentials.effect as "require_approval"
	d.effect == "require_approval"
}

test_path_not_a_string_is_ignored if {
	effect_of(tool_call("read", {"path": 42}, "production")) == "allow"
	effect_of(tool_call("read", {"path": {"nested": "~/.ssh/id_rsa"}}, "production")) == "allow"
}

# Cluster, registry, Kerberos, password-manager and agent logins beyond the home
# directory's usual dot-files (seventh round of probing).
test_more_credential_stores_are_denied if {
	every path in [
		"/etc/rancher/k3s/k3s.yaml", "/var/lib/rancher/k3s/server/token", "/var/lib/kubelet/kubeconfig",
		"/run/user/1000/containers/auth.json", "/home/u/.config/containers/auth.json", "/home/u/.talos/config",
		"/tmp/krb5cc_1000", "/etc/krb5.keytab", "/var/lib/sss/db/cache_x.ldb", "/var/lib/tailscale/tailscaled.state",
		"vault/team.kdbx", "/home/u/.config/Bitwarden CLI/data.json", "/home/u/.claude.json",
		"/home/u/.cursor/mcp.json", "/home/u/.local/share/jupyter/runtime/kernel-1.json", "ansible/.vault_pass",
		"/home/u/.passwd-s3fs", "/home/u/.smbcredentials", "/home/u/.pki/nssdb/key4.db", "/etc/salt/pki/master/master.pem",
		# Other users' homes on macOS and Windows, and their own credential stores.
		"/Users/ops/.openclaw/credentials/x.json", "/Users/ops/Library/Keychains/login.keychain-db",
		"/Users/ops/Library/Application Support/Google/Chrome/Default/Cookies",
		"C:\\Users\\ops\\AppData\\Roaming\\gcloud\\credentials.db", "/home/u/.config/Signal/config.json",
		# Case-insensitive file systems (macOS, Windows): another case is the same file.
		"~/.SSH/id_rsa", "/home/dev/.Aws/Credentials", "/home/dev/.KUBE/config",
	] {
		read_path(path, "development").effect == "deny"
	}
	every path in ["/run/user/1000/bus", "docs/auth.json", "/etc/rancher-notes.txt", "notes/krb5.conf"] {
		read_path(path, "production").effect == "allow"
	}
}

# One example per credential rule id, so a pattern edit that stops matching fails here.
credential_examples := {
	"cred.input_devices": "/dev/input/event0",
	"cred.cli_tokens": "~/.config/doctl/config.yaml",
	"cred.ai_tokens": "/home/u/.codex/auth.json",
	"cred.encryption_keys": "~/.config/sops/age/keys.txt",
	"cred.system_keys": "/etc/wireguard/wg0.conf",
	"cred.ssh": "/home/u/.ssh/config",
	"cred.ssh_key": "backup/id_ecdsa",
	"cred.dotenv": "services/api/.env.staging",
	"cred.aws": "/root/.aws/credentials",
	"cred.gcloud": "/home/u/.config/gcloud/credentials.db",
	"cred.azure": "/home/u/.azure/accessTokens.json",
	"cred.kube": "/home/u/.kube/config",
	"cred.token_files": "/home/u/.pypirc",
	"cred.docker": "/home/u/.docker/config.json",
	"cred.gh": "/home/u/.config/gh/hosts.yml",
	"cred.gnupg": "/home/u/.gnupg/pubring.kbx",
	"cred.private_key": "deploy/privkey.pem",
	"cred.system": "/etc/gshadow",
	"cred.openclaw": "/home/u/.openclaw/secrets.json",
	"cred.governance": "/home/u/.openclaw/exec-approvals.json",
	"cred.container_secrets": "/var/run/secrets/kubernetes.io/serviceaccount/token",
	"cred.sidecar": "/srv/clawgate-state/admin.token",
	"cred.secret_store": "/home/u/.password-store/work/db.gpg",
	"cred.history": "/home/u/.bash_history",
	"cred.browser": "/home/u/.mozilla/firefox/abc.default/logins.json",
	"cred.tfstate": "infra/terraform.tfstate",
}

command_credential_examples := {
	"cred.governance": "openclaw plugins disable clawgate",
	"cred.cli_token": "az account get-access-token",
	"cred.k8s_secret": "kubectl -n prod get secret api-keys --output json",
	"cred.secret_store": "vault kv get secret/prod/db",
	"cred.secret_env_var": "echo $AWS_SECRET_ACCESS_KEY",
	"cred.k8s_config": "kubectl config view --raw",
	"cred.tfstate": "terraform state pull",
}

# The agent answering its own held calls or switching enforcement off through clawgate's
# CLI, or changing OpenClaw's exec approvals, acts on the guard itself: denied everywhere.
test_acting_on_the_guard_through_its_cli_is_governance if {
	every cmd in [
		"clawgate approvals approve 0190abc", "clawgate approvals deny x --reason y", "clawgate mode set shadow",
		"/usr/local/bin/clawgate approvals approve x", "openclaw approvals allowlist add 'rm *'",
	] {
		d := decide(exec_call(cmd, "development"))
		d.effect == "deny"
		fired(d, "cred.governance")
	}
	every cmd in ["pkill -f clawgate", "kill -9 $(pgrep clawgate)", "systemctl stop clawgate", "docker rm -f clawgate-sidecar", "kubectl delete pod clawgate-0"] {
		d := decide(exec_call(cmd, "development"))
		d.effect == "deny"
		fired(d, "cred.governance")
	}
	every cmd in ["clawgate approvals list", "clawgate audit verify", "systemctl status clawgate", "docker logs clawgate", "kill -0 $(pgrep clawgate)", "pkill node"] {
		not fired(decide(exec_call(cmd, "development")), "cred.governance")
	}
}

# CLIs that print or decrypt secrets (exec.secret_commands): Terraform state and outputs,
# Pulumi's --show-secrets, platform config vars, sops/ansible-vault/gpg decryption,
# Bitwarden and the desktop keyring.
test_secret_printing_commands_are_credential_reads if {
	every cmd in [
		"terraform show -json", "tofu state pull", "pulumi stack output --show-secrets", "heroku config -a web",
		"flyctl auth token", "vercel env pull", "doppler secrets", "sops -d secrets.enc.yaml", "ansible-vault view vault.yml",
		"gpg --decrypt notes.asc", "bw get password github", "secret-tool lookup service x", "stripe config --list",
	] {
		decide(exec_call(cmd, "development")).effect == "deny"
	}
	every cmd in ["terraform output -json", "terraform output -raw url"] {
		decide(exec_call(cmd, "development")).effect == "require_approval"
	}
	every cmd in ["terraform show", "terraform plan", "gpg --list-keys", "heroku apps"] {
		d := decide(exec_call(cmd, "development"))
		not fired(d, "cred.tfstate")
		not fired(d, "cred.secret_store")
	}
}

test_every_path_pattern_has_an_example if {
	ids := ({e.id | some _, e in data.clawgate.paths.sensitive} | {e.id | some _, e in data.clawgate.paths.sensitive_names}) | {"cred.private_key"}
	ids == {id | some id, _ in credential_examples}
	every id, path in credential_examples {
		fired(read_path(path, "development"), id)
	}
}

test_every_command_pattern_has_an_example if {
	ids := {s.id | some _, list in data.clawgate.exec.secret_commands; some s in list} | {"cred.k8s_secret", "cred.secret_env_var"}
	ids == {id | some id, _ in command_credential_examples}
	every id, cmd in command_credential_examples {
		fired(decide(exec_call(cmd, "development")), id)
	}
}

# A parameter the catalog does not name is judged by its value's shape: a
# path-shaped word is a path the call names (not the file a write writes), prose
# that mentions a path is not.
test_unnamed_parameters_are_judged_by_shape if {
	every call in [
		["read", {"filePath": "/home/dev/.ssh/id_rsa"}], ["read", {"paths": ["~/.aws/credentials"]}],
		["view_image", {"image": "/home/dev/.ssh/id_rsa"}], ["image_generate", {"prompt": "x", "image": "~/.kube/config"}],
		["message", {"action": "send", "to": "x", "media": "/home/dev/.ssh/id_ed25519"}],
	] {
		decide(tool_call(call[0], call[1], "development")).effect == "deny"
	}
	every call in [
		["write", {"path": "run.sh", "content": "/usr/local/bin/start"}],
		["write", {"path": "notes.md", "content": "keys live in /home/dev/.ssh/id_rsa"}],
	] {
		decide(tool_call(call[0], call[1], "development")).effect == "allow"
	}
}
