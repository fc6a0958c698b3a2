"""TLS and basic auth for a local OpenSearch node, made fresh each time the node starts.

A secured node (``splade-es node start --engine opensearch --secure``) runs the
``opensearch-security`` plugin with:

* a certificate authority made at start, whose private key is deleted once it has signed the
  node certificate (SAN ``localhost`` and ``127.0.0.1``), used on HTTP and transport;
* one internal user, ``admin``, with a random password, mapped to ``all_access``; the demo
  configuration and its well-known passwords are not installed.

Certificates are made with the ``keytool`` of the JDK the node runs on and the password hash
with the plugin's own ``Hasher``, so nothing beyond that JDK is needed. Passwords reach both
tools through environment variables, never through a command line. What a client needs is
in a folder only the caller can read: ``ca.pem`` (the CA certificate) and ``password``
(mode 0600). Nothing here logs or prints a password.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import ssl
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ADMIN_USER = "admin"
PLUGIN_FOLDER = "opensearch-security"
NODE_DN = "CN=localhost,OU=node,O=splade-es"
ADMIN_DN = "CN=admin,OU=client,O=splade-es"
_CERTS = "certs"  # folder under the node's config dir


class SecuritySetupError(RuntimeError):
    """The certificates or the security configuration of a node could not be made."""


@dataclass(frozen=True)
class NodeAccess:
    """What a client needs to reach a secured node; holds no secret itself.

    Attributes:
        ca_certs: PEM file of the CA that signed the node certificate (``--ca-certs``).
        username: the internal user (``--username``).
        password_file: file holding that user's password, readable by its owner only.
    """

    ca_certs: Path
    username: str
    password_file: Path

    def password(self) -> str:
        """The password, read from :attr:`password_file`."""
        return self.password_file.read_text().strip()


@dataclass(frozen=True)
class Certificates:
    """A CA and a node key pair it signed, in PKCS#12 stores.

    Attributes:
        ca_pem: the CA certificate (PEM); the CA's private key is not kept.
        keystore: the node key and its certificate chain (alias ``node``).
        truststore: the CA certificate (alias ``ca``).
        password: the password of both stores.
    """

    ca_pem: Path
    keystore: Path
    truststore: Path
    password: str = field(repr=False)


def security_settings(certs: Certificates, conf: Path) -> str:
    """``opensearch.yml`` lines for TLS on HTTP and transport and the security index.

    Pure; store paths are written relative to the config dir ``conf``, as the plugin
    resolves them.
    """
    keystore = certs.keystore.relative_to(conf)
    truststore = certs.truststore.relative_to(conf)
    lines = []
    for layer in ("transport", "http"):
        prefix = f"plugins.security.ssl.{layer}"
        lines += [
            f"{prefix}.keystore_type: PKCS12",
            f"{prefix}.keystore_filepath: {keystore}",
            f"{prefix}.keystore_alias: node",
            f"{prefix}.keystore_password: {json.dumps(certs.password)}",
            f"{prefix}.truststore_type: PKCS12",
            f"{prefix}.truststore_filepath: {truststore}",
            f"{prefix}.truststore_password: {json.dumps(certs.password)}",
        ]
    lines += [
        "plugins.security.ssl.http.enabled: true",
        "plugins.security.ssl.transport.enforce_hostname_verification: false",
        "plugins.security.allow_default_init_securityindex: true",
        f"plugins.security.authcz.admin_dn: [{json.dumps(ADMIN_DN)}]",
        f"plugins.security.nodes_dn: [{json.dumps(NODE_DN)}]",
        'plugins.security.restapi.roles_enabled: ["all_access"]',
    ]
    return "\n# splade-es secured node\n" + "\n".join(lines) + "\n"


def internal_users_yaml(username: str, password_hash: str) -> str:
    """The plugin's ``internal_users.yml`` with one user (pure)."""
    return (
        '_meta:\n  type: "internalusers"\n  config_version: 2\n'
        f"{json.dumps(username)}:\n"
        f"  hash: {json.dumps(password_hash)}\n"
        "  reserved: true\n"
        '  backend_roles: ["admin"]\n'
        '  description: "splade-es local node administrator"\n'
    )


def roles_mapping_yaml(username: str) -> str:
    """The plugin's ``roles_mapping.yml``: ``username`` gets ``all_access`` (pure)."""
    return (
        '_meta:\n  type: "rolesmapping"\n  config_version: 2\n'
        "all_access:\n  reserved: false\n"
        f"  users: [{json.dumps(username)}]\n"
        '  backend_roles: ["admin"]\n'
    )


def make_certificates(java_home: Path, folder: Path, *, days: int = 365) -> Certificates:
    """A new CA, and a node certificate for ``localhost``/``127.0.0.1`` signed by it.

    Args:
        java_home: a JDK (its ``bin/keytool`` is used).
        folder: where the stores and ``ca.pem`` are written (created).
        days: validity of both certificates.

    Raises:
        SecuritySetupError: keytool failed (its message is included).
    """
    keytool = java_home / "bin" / "keytool"
    if not keytool.is_file():
        raise SecuritySetupError(f"{java_home} has no bin/keytool: pass a full JDK.")
    folder.mkdir(parents=True, exist_ok=True)
    certs = Certificates(
        ca_pem=folder / "ca.pem",
        keystore=folder / "node.p12",
        truststore=folder / "truststore.p12",
        password=secrets.token_hex(16),
    )
    ca_store, request, signed = folder / "ca.p12", folder / "node.csr", folder / "node.crt"
    env = {"SPLADE_ES_CA_PASS": secrets.token_hex(16), "SPLADE_ES_STORE_PASS": certs.password}
    ca = ["-keystore", str(ca_store), "-storetype", "PKCS12", "-storepass:env", "SPLADE_ES_CA_PASS"]
    node = ["-keystore", str(certs.keystore), "-storetype", "PKCS12"]
    node += ["-storepass:env", "SPLADE_ES_STORE_PASS"]
    validity = ["-validity", str(days)]
    steps = [
        ["-genkeypair", "-alias", "ca", "-keyalg", "RSA", "-keysize", "2048", *validity,
         "-dname", "CN=splade-es local CA,O=splade-es", "-ext", "bc:c", *ca],
        ["-exportcert", "-alias", "ca", "-rfc", "-file", str(certs.ca_pem), *ca],
        ["-genkeypair", "-alias", "node", "-keyalg", "RSA", "-keysize", "2048", *validity,
         "-dname", NODE_DN, *node],
        ["-certreq", "-alias", "node", "-file", str(request), *node],
        ["-gencert", "-alias", "ca", "-infile", str(request), "-outfile", str(signed), "-rfc",
         "-ext", "san=dns:localhost,ip:127.0.0.1", "-ext", "eku=serverAuth,clientAuth",
         "-ext", "ku:c=digitalSignature,keyEncipherment", *validity, *ca],
        ["-importcert", "-noprompt", "-alias", "ca", "-file", str(certs.ca_pem), *node],
        ["-importcert", "-alias", "node", "-file", str(signed), *node],
        ["-importcert", "-noprompt", "-alias", "ca", "-file", str(certs.ca_pem),
         "-keystore", str(certs.truststore), "-storetype", "PKCS12",
         "-storepass:env", "SPLADE_ES_STORE_PASS"],
    ]  # fmt: skip
    try:
        for step in steps:
            _run([str(keytool), *step], env, "keytool")
    finally:
        for leftover in (ca_store, request, signed):
            leftover.unlink(missing_ok=True)
    return certs


def hash_password(java_home: Path, home: Path, password: str) -> str:
    """The bcrypt hash of ``password``, made by the security plugin's ``Hasher``.

    Args:
        java_home: the JDK the node runs on.
        home: the node home with ``plugins/opensearch-security``.
        password: the password (passed to the tool through its environment).
    """
    plugin = home / "plugins" / PLUGIN_FOLDER
    classpath = ":".join(str(p) for p in (plugin / "*", plugin / "deps" / "*", home / "lib" / "*"))
    command = [str(java_home / "bin" / "java"), "-cp", classpath]
    command += ["org.opensearch.security.tools.Hasher", "-env", "SPLADE_ES_NEW_PASSWORD"]
    output = _run(command, {"SPLADE_ES_NEW_PASSWORD": password}, "the password Hasher")
    hashes = [line for line in output.split() if line.startswith("$2")]
    if not hashes:
        raise SecuritySetupError(
            f"The security plugin's Hasher printed no bcrypt hash (it printed "
            f"{len(output)} characters); check the plugin in {plugin}."
        )
    return hashes[-1]


def configure(conf: Path, client_dir: Path, *, home: Path, java_home: Path) -> NodeAccess:
    """Make the certificates, user and plugin configuration of a secured node.

    Args:
        conf: the node's own config dir (a copy; settings are appended to its
            ``opensearch.yml`` and ``opensearch-security/`` is written into it).
        client_dir: a new folder for what the client needs (``ca.pem``, ``password``),
            readable by the caller only.
        home: the node home, which must hold ``plugins/opensearch-security``.
        java_home: the JDK the node runs on.

    Raises:
        SecuritySetupError: the plugin is missing, or keytool or the Hasher failed.
    """
    plugin = home / "plugins" / PLUGIN_FOLDER
    if not (plugin / "plugin-descriptor.properties").is_file():
        raise SecuritySetupError(
            f"{home} has no plugins/{PLUGIN_FOLDER}: a secured node needs the OpenSearch "
            "security plugin; leave --home out to use the downloaded secured distribution."
        )
    client_dir.mkdir(mode=0o700, parents=True)
    certs = make_certificates(java_home, conf / _CERTS)
    shutil.copy2(certs.ca_pem, client_dir / "ca.pem")
    password = secrets.token_urlsafe(24)
    password_file = client_dir / "password"
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(password + "\n")

    security_conf = conf / PLUGIN_FOLDER
    security_conf.mkdir(exist_ok=True)
    for shipped in sorted((plugin / "config").glob("*.yml")):
        shutil.copy2(shipped, security_conf / shipped.name)
    (security_conf / "internal_users.yml").write_text(
        internal_users_yaml(ADMIN_USER, hash_password(java_home, home, password))
    )
    (security_conf / "roles_mapping.yml").write_text(roles_mapping_yaml(ADMIN_USER))
    settings = conf / "opensearch.yml"
    with settings.open("a") as handle:
        handle.write(security_settings(certs, conf))
    for path in [conf, *conf.rglob("*")]:  # the plugin warns about anything looser
        os.chmod(path, 0o700 if path.is_dir() else 0o600)
    return NodeAccess(client_dir / "ca.pem", ADMIN_USER, password_file)


def secured_health(
    url: str, access: NodeAccess, timeout_s: float = 2.0
) -> dict[str, object] | None:
    """``_cluster/health`` over verified TLS with basic auth, or ``None`` if no answer.

    Also ``None`` when the CA or password file cannot be read (e.g. by another user).
    """
    try:
        context = ssl.create_default_context(cafile=str(access.ca_certs))
        token = base64.b64encode(f"{access.username}:{access.password()}".encode()).decode()
        request = urllib.request.Request(
            f"{url}/_cluster/health", headers={"Authorization": f"Basic {token}"}
        )
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as response:
            body: dict[str, object] = json.loads(response.read())
            return body
    except (urllib.error.URLError, OSError, ValueError):
        return None


def _run(command: list[str], env: dict[str, str], tool: str) -> str:
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()[-800:]
        raise SecuritySetupError(f"{tool} failed (exit {result.returncode}): {detail}")
    return result.stdout
