#!/usr/bin/python3
"""Checks the deployment files: every YAML and JSON file under deploy/ (and configs/*.json)
parses, and the files agree with each other and with the Dockerfile.

  /usr/bin/python3 tests/deploy/deploy_files_test.py [--root REPO]

Run by ctest (tests/deploy/CMakeLists.txt). Needs python3-yaml (deploy/install-deps.sh); runs
`promtool check config` on deploy/prometheus.yml and `promtool check rules` on the dashboard's
queries when promtool (package prometheus) is on PATH, and `docker-compose config` when
installed. Prints every problem and exits 1 if any.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:
    print("deploy_files_test: python3-yaml is missing (deploy/install-deps.sh installs it)")
    sys.exit(1)

# The metric names selene-server exports (issue 6); the dashboard may use no other.
KNOWN_METRICS = {
    "selene_jobs", "selene_jobs_submitted_total", "selene_jobs_finished_total",
    "selene_job_queue_wait_seconds", "selene_training_step_seconds",
    "selene_training_images_total", "selene_job_epoch", "selene_job_validation_metric",
    "selene_inference_requests_total", "selene_inference_request_seconds",
    "selene_inference_queue_seconds", "selene_inference_batch_size", "selene_models_loaded",
    "selene_device_memory_used_bytes", "grpc_server_started_total", "grpc_server_handled_total",
    "grpc_server_handling_seconds",
}
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count")

# The panels the dashboard must keep (issue 6): expression fragments, whitespace-insensitive.
REQUIRED_EXPRESSIONS = [
    "selene_jobs",
    "sum(rate(selene_training_images_total[1m]))",
    "sum by (code) (rate(selene_inference_requests_total[1m]))",
    "histogram_quantile(0.5, sum by (le) (rate(selene_inference_request_seconds_bucket[5m])))",
    "histogram_quantile(0.99, sum by (le) (rate(selene_inference_request_seconds_bucket[5m])))",
    "sum by (grpc_code) (rate(grpc_server_handled_total[1m]))",
]


class Checker:
    def __init__(self, root):
        self.root = root
        self.errors = []
        self.checks = 0

    def rel(self, path):
        return os.path.relpath(path, self.root)

    def error(self, where, message):
        self.errors.append(f"{where}: {message}")

    def expect(self, condition, where, message):
        self.checks += 1
        if not condition:
            self.error(where, message)
        return condition

    # ---- syntax ----

    def load_yaml(self, path):
        """All documents of a YAML file, or None after recording the error."""
        try:
            with open(path, encoding="utf-8") as f:
                docs = [d for d in yaml.safe_load_all(f) if d is not None]
        except (OSError, yaml.YAMLError) as e:
            self.error(self.rel(path), f"invalid YAML: {e}")
            return None
        self.checks += 1
        if not docs:
            self.error(self.rel(path), "empty YAML file")
            return None
        return docs

    def load_json(self, path):
        def no_duplicates(pairs):
            keys = [k for k, _ in pairs]
            dups = sorted({k for k in keys if keys.count(k) > 1})
            if dups:
                raise ValueError(f"duplicate keys {dups}")
            return dict(pairs)

        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f, object_pairs_hook=no_duplicates)
        except (OSError, ValueError) as e:
            self.error(self.rel(path), f"invalid JSON: {e}")
            return None
        self.checks += 1
        return doc

    def parse_all(self):
        """Parses every YAML/JSON file under deploy/ and configs/*.json; returns {relpath: docs}."""
        parsed = {}
        files = []
        for folder, _, names in os.walk(os.path.join(self.root, "deploy")):
            files += [os.path.join(folder, n) for n in names]
        configs = os.path.join(self.root, "configs")
        if os.path.isdir(configs):
            files += [os.path.join(configs, n) for n in os.listdir(configs) if n.endswith(".json")]
        for path in sorted(files):
            if path.endswith((".yml", ".yaml")):
                parsed[self.rel(path)] = self.load_yaml(path)
            elif path.endswith(".json"):
                parsed[self.rel(path)] = self.load_json(path)
        self.expect(any(p.endswith(".json") for p in parsed), "configs/", "no JSON files found")
        return parsed

    # ---- meaning ----

    def dockerfile(self):
        """EXPOSEd ports and VOLUMEs of the runtime stage (the last FROM)."""
        path = os.path.join(self.root, "Dockerfile")
        if not self.expect(os.path.isfile(path), "Dockerfile", "missing"):
            return set(), []
        with open(path, encoding="utf-8") as f:
            text = re.sub(r"\\\n", " ", f.read())
        stage = re.split(r"(?im)^FROM\s", text)[-1]
        ports = set()
        for line in re.findall(r"(?im)^EXPOSE\s+(.*)$", stage):
            ports |= {int(p.split("/")[0]) for p in line.split()}
        volumes = []
        for line in re.findall(r"(?im)^VOLUME\s+(.*)$", stage):
            volumes += json.loads(line) if line.strip().startswith("[") else line.split()
        self.expect(re.search(r"(?im)^HEALTHCHECK\s", stage), "Dockerfile", "no HEALTHCHECK")
        self.expect(re.search(r"(?im)^USER\s+(?!root|0\b)", stage), "Dockerfile",
                    "runtime stage does not switch to a non-root USER")
        return ports, volumes

    def compose(self, docs, exposed):
        where = "deploy/docker-compose.yml"
        if not docs:
            return {}
        doc = docs[0]
        services = doc.get("services") or {}
        self.expect(isinstance(services, dict) and services, where, "no services")
        declared_volumes = set((doc.get("volumes") or {}).keys())
        base = os.path.join(self.root, "deploy")
        for name, svc in services.items():
            w = f"{where}: service {name}"
            self.expect("image" in svc or "build" in svc, w, "has neither image nor build")
            build = svc.get("build")
            if build is not None:
                context = build if isinstance(build, str) else build.get("context", ".")
                dockerfile = "Dockerfile" if isinstance(build, str) else build.get(
                    "dockerfile", "Dockerfile")
                self.expect(os.path.isfile(os.path.join(base, context, dockerfile)), w,
                            f"build context {context} has no {dockerfile}")
            for volume in svc.get("volumes") or []:
                source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source")
                if source.startswith((".", "/")):
                    if source.startswith("."):
                        self.expect(os.path.exists(os.path.join(base, source)), w,
                                    f"bind mount source {source} does not exist")
                else:
                    self.expect(source in declared_volumes, w,
                                f"named volume {source} not declared under volumes:")
        compose = shutil.which("docker-compose")
        if compose:
            # Compose's own schema check, when a compose tool is installed (not in install-deps).
            run = subprocess.run([compose, "-f", os.path.join(self.root, where), "config", "-q"],
                                 capture_output=True, text=True)
            self.expect(run.returncode == 0, where,
                        f"docker-compose config failed:\n{run.stdout}{run.stderr}")
        selene = services.get("selene")
        if self.expect(selene is not None, where, "no selene service"):
            published = set()
            for port in selene.get("ports") or []:
                published.add(int(str(port).split(":")[-1].split("/")[0]))
            self.expect(published == exposed, f"{where}: service selene",
                        f"container ports {sorted(published)} differ from the Dockerfile's "
                        f"EXPOSE {sorted(exposed)}")
        return services

    def prometheus(self, docs, metrics_port):
        where = "deploy/prometheus.yml"
        if not docs:
            return
        targets = [t for job in docs[0].get("scrape_configs") or []
                   for sc in job.get("static_configs") or [] for t in sc.get("targets") or []]
        self.expect(f"selene:{metrics_port}" in targets, where,
                    f"no scrape target selene:{metrics_port} (targets: {targets})")
        promtool = shutil.which("promtool")
        if promtool:
            run = subprocess.run([promtool, "check", "config", os.path.join(self.root, where)],
                                 capture_output=True, text=True)
            self.expect(run.returncode == 0, where,
                        f"promtool check config failed:\n{run.stdout}{run.stderr}")
        else:
            print("deploy_files_test: promtool not found; skipping promtool check config")

    def grafana(self, parsed, services):
        ds_docs = parsed.get("deploy/grafana/provisioning/datasources/prometheus.yml")
        uids = set()
        if ds_docs:
            for ds in ds_docs[0].get("datasources") or []:
                uids.add(ds.get("uid"))
                if ds.get("type") == "prometheus":
                    self.expect(ds.get("url") == "http://prometheus:9090",
                                "grafana datasource", f"url {ds.get('url')} is not the compose "
                                "service prometheus:9090")
        provider = parsed.get("deploy/grafana/provisioning/dashboards/selene.yml")
        mounts = [v for v in (services.get("grafana") or {}).get("volumes") or []
                  if isinstance(v, str) and v.startswith("./grafana/dashboards:")]
        if provider and self.expect(mounts, "deploy/docker-compose.yml",
                                    "grafana does not mount ./grafana/dashboards"):
            path = provider[0]["providers"][0]["options"]["path"]
            self.expect(mounts[0].split(":")[1] == path, "grafana dashboard provider",
                        f"path {path} is not where compose mounts the dashboards ({mounts[0]})")

        where = "deploy/grafana/dashboards/selene.json"
        dash = parsed.get(where)
        if not self.expect(isinstance(dash, dict), where, "missing or not an object"):
            return
        panels = dash.get("panels") or []
        ids = [p.get("id") for p in panels]
        self.expect(len(ids) == len(set(ids)), where, f"panel ids repeat: {ids}")
        exprs = []
        for panel in panels:
            w = f"{where}: panel {panel.get('title')!r}"
            targets = panel.get("targets") or []
            self.expect(targets, w, "no targets")
            for t in targets:
                if self.expect(t.get("expr"), w, f"target {t.get('refId')} has no expr"):
                    exprs.append(t["expr"])
                uid = (t.get("datasource") or panel.get("datasource") or {}).get("uid")
                self.expect(uid in uids, w, f"datasource uid {uid} is not provisioned ({uids})")
        squash = lambda s: re.sub(r"\s+", "", s)
        for required in REQUIRED_EXPRESSIONS:
            self.expect(any(squash(required) in squash(e) for e in exprs), where,
                        f"no panel queries {required}")
        for expr in exprs:
            for name in re.findall(r"\b((?:selene|grpc_server)_[a-z_]+)", expr):
                base = name
                for suffix in HISTOGRAM_SUFFIXES:
                    if name.endswith(suffix) and name[: -len(suffix)] in KNOWN_METRICS:
                        base = name[: -len(suffix)]
                self.expect(base in KNOWN_METRICS, where,
                            f"query {expr!r} names {name}, which selene-server does not export")
        self.expect(any("selene_" in e for e in exprs), where, "no query refers to selene_ metrics")
        promtool = shutil.which("promtool")
        if promtool and exprs:
            # promtool has no bare expression check; a rule file of recording rules parses each.
            rules = {"groups": [{"name": "dashboard", "rules": [
                {"record": f"dashboard:expr{i}", "expr": e} for i, e in enumerate(exprs)]}]}
            with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
                yaml.safe_dump(rules, f)
            try:
                run = subprocess.run([promtool, "check", "rules", f.name],
                                     capture_output=True, text=True)
                self.expect(run.returncode == 0, where,
                            f"a query does not parse (promtool):\n{run.stdout}{run.stderr}")
            finally:
                os.unlink(f.name)

    def kubernetes(self, parsed, exposed, volumes):
        objects = {}
        for rel, docs in parsed.items():
            if rel.startswith("deploy/kubernetes/") and docs:
                for doc in docs:
                    if isinstance(doc, dict) and "kind" in doc:
                        objects.setdefault(doc["kind"], []).append((rel, doc))
        where = "deploy/kubernetes"
        if not self.expect(objects.get("Deployment") and objects.get("Service"), where,
                           "needs a Deployment and a Service"):
            return
        rel, dep = objects["Deployment"][0]
        spec = dep["spec"]
        self.expect(spec.get("replicas") == 1, rel, "replicas must be 1 (single-writer store)")
        self.expect((spec.get("strategy") or {}).get("type") == "Recreate", rel,
                    "strategy must be Recreate (single-writer store)")
        pod = spec["template"]["spec"]
        self.expect((pod.get("securityContext") or {}).get("runAsNonRoot") is True, rel,
                    "pod securityContext.runAsNonRoot is not true")
        labels = spec["template"]["metadata"].get("labels") or {}
        selector = spec["selector"]["matchLabels"]
        self.expect(all(labels.get(k) == v for k, v in selector.items()), rel,
                    "selector does not match the pod labels")
        container = pod["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container.get("ports") or []}
        self.expect(set(ports.values()) == exposed, rel,
                    f"container ports {sorted(ports.values())} differ from the Dockerfile's "
                    f"EXPOSE {sorted(exposed)}")
        for probe in ("readinessProbe", "livenessProbe"):
            self.expect(probe in container, rel, f"no {probe}")
        mounts = {m["mountPath"] for m in container.get("volumeMounts") or []}
        for v in volumes:
            self.expect(v in mounts, rel, f"the image's VOLUME {v} is not mounted")
        annotations = spec["template"]["metadata"].get("annotations") or {}
        self.expect(annotations.get("prometheus.io/scrape") == "true", rel,
                    "pod lacks prometheus.io/scrape: \"true\"")
        self.expect(str(annotations.get("prometheus.io/port")) == str(ports.get("metrics")), rel,
                    f"prometheus.io/port {annotations.get('prometheus.io/port')} is not the "
                    f"metrics port {ports.get('metrics')}")
        claims = {c["metadata"]["name"] for _, c in objects.get("PersistentVolumeClaim", [])}
        for volume in pod.get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if claim:
                self.expect(claim in claims, rel, f"claim {claim} is not defined")

        srel, svc = objects["Service"][0]
        self.expect(all(svc["spec"]["selector"].get(k) == labels.get(k)
                        for k in svc["spec"]["selector"]), srel,
                    "selector does not select the Deployment's pods")
        for port in svc["spec"]["ports"]:
            target = port.get("targetPort", port["port"])
            number = ports.get(target) if isinstance(target, str) else target
            self.expect(number in ports.values(), srel,
                        f"port {port.get('name')} targets {target}, not a container port "
                        f"({ports})")
            self.expect(port["port"] == number, srel,
                        f"port {port.get('name')} is {port['port']} but targets {number}")
        self.expect({p["port"] for p in svc["spec"]["ports"]} == set(ports.values()), srel,
                    "does not expose every container port")

        kust = parsed.get("deploy/kubernetes/kustomization.yaml")
        if kust:
            for resource in kust[0].get("resources") or []:
                self.expect(os.path.isfile(os.path.join(self.root, where, resource)),
                            "deploy/kubernetes/kustomization.yaml", f"resource {resource} missing")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=os.path.join(os.path.dirname(__file__), "..", ".."))
    root = os.path.abspath(parser.parse_args().root)

    c = Checker(root)

    def guarded(where, check, *args, fallback=None):
        # A file that parses but lacks an expected key or has the wrong shape is a failure
        # with its name, not a traceback.
        try:
            return check(*args)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as e:
            c.error(where, f"unexpected structure: {type(e).__name__}: {e}")
            return fallback

    parsed = c.parse_all()
    exposed, volumes = guarded("Dockerfile", c.dockerfile, fallback=(set(), []))
    services = guarded("deploy/docker-compose.yml", c.compose,
                       parsed.get("deploy/docker-compose.yml"), exposed, fallback={})
    guarded("deploy/prometheus.yml", c.prometheus, parsed.get("deploy/prometheus.yml"), 9464)
    guarded("deploy/grafana", c.grafana, parsed, services)
    guarded("deploy/kubernetes", c.kubernetes, parsed, exposed, volumes)

    for e in c.errors:
        print(f"FAIL {e}")
    print(f"deploy_files_test: {len(parsed)} files parsed, {c.checks} checks, "
          f"{len(c.errors)} failed")
    return 1 if c.errors else 0


if __name__ == "__main__":
    sys.exit(main())
