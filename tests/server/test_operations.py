"""Health, reflection, access logs, metrics, paging over the catalogs and plan diffs."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import urllib.request

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from trainspec.v1 import compiler_service_pb2 as pb
from trainspec.v1 import compiler_service_pb2_grpc as pb_grpc
from trainspec.v1 import review_pb2

SERVICE = "trainspec.v1.CompilerService"


def test_health_reports_serving_for_the_server_and_the_service(channel):
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", SERVICE):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_health_goes_not_serving_on_drain(start_server):
    running = start_server()
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        health = health_pb2_grpc.HealthStub(chan)
        running.health.enter_graceful_shutdown()
        answer = health.Check(health_pb2.HealthCheckRequest(service=SERVICE), timeout=10)
        assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING


def test_reflection_lists_and_describes_the_service(channel):
    reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol=SERVICE),
    ]
    listed, described = list(reflection.ServerReflectionInfo(iter(requests), timeout=10))
    names = {service.name for service in listed.list_services_response.service}
    assert {SERVICE, "grpc.health.v1.Health"} <= names
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in described.file_descriptor_response.file_descriptor_proto
    ]
    methods = {
        m.name for f in files for s in f.service if s.name == "CompilerService" for m in s.method
    }
    assert methods == {"Compile", "ListInstanceTypes", "ListPretrainedModels", "DiffPlans"}


def test_every_call_is_logged_with_method_code_latency_and_request_id(stub, caplog):
    caplog.set_level(logging.INFO, logger="trainspec.server.access")
    with pytest.raises(grpc.RpcError):
        stub.Compile(pb.CompileRequest(), timeout=10, metadata=[("x-request-id", "req-123")])
    lines = [r.fields for r in caplog.records if r.name == "trainspec.server.access"]
    (line,) = [f for f in lines if f["request_id"] == "req-123"]
    assert line["method"] == f"/{SERVICE}/Compile"
    assert line["code"] == "INVALID_ARGUMENT"
    assert line["latency_ms"] >= 0
    json.dumps(line)  # the formatter writes it as one JSON object


def test_prometheus_metrics_count_calls_by_method_and_code(start_server):
    running = start_server(metrics_port=0)
    with grpc.insecure_channel(f"127.0.0.1:{running.port}") as chan:
        stub = pb_grpc.CompilerServiceStub(chan)
        stub.ListPretrainedModels(pb.ListPretrainedModelsRequest(), timeout=10)
        with pytest.raises(grpc.RpcError):
            stub.Compile(pb.CompileRequest(), timeout=10)
    url = f"http://127.0.0.1:{running.metrics_port}/metrics"
    with urllib.request.urlopen(url, timeout=10) as reply:
        text = reply.read().decode()
    assert (
        'grpc_server_handled_total{grpc_code="INVALID_ARGUMENT",'
        f'grpc_method="Compile",grpc_service="{SERVICE}"}} 1.0'
    ) in text
    assert 'grpc_method="ListPretrainedModels"' in text
    assert "grpc_server_handling_seconds_bucket" in text


def test_instance_types_page_through_the_whole_catalog(stub):
    from trainspec.compiler import load_catalog

    catalog = load_catalog()
    names, token, pages = [], "", 0
    while True:
        page = stub.ListInstanceTypes(
            pb.ListInstanceTypesRequest(page_size=7, page_token=token), timeout=10
        )
        assert len(page.instance_types) <= 7
        names += [i.name for i in page.instance_types]
        token, pages = page.next_page_token, pages + 1
        if not token:
            break
    assert names == sorted(catalog.instances)
    assert pages == -(-len(names) // 7)
    assert page.catalog_version == catalog.versions["instances"]
    p3 = next(
        i
        for i in stub.ListInstanceTypes(pb.ListInstanceTypesRequest(), timeout=10).instance_types
        if i.name == "ml.p3.8xlarge"
    )
    assert (p3.gpus, p3.vcpus) == (4, 32) and p3.price_per_hour > 0


def test_instance_types_filter_by_gpus(stub):
    page = stub.ListInstanceTypes(pb.ListInstanceTypesRequest(min_gpus=8), timeout=10)
    assert page.instance_types and all(i.gpus >= 8 for i in page.instance_types)


@pytest.mark.parametrize(
    "request_,field",
    [
        (pb.ListInstanceTypesRequest(page_size=-1), "page_size"),
        (pb.ListInstanceTypesRequest(page_token="not-a-token"), "page_token"),
        (pb.ListInstanceTypesRequest(min_gpus=-2), "min_gpus"),
    ],
)
def test_bad_paging_requests_are_invalid_argument(stub, request_, field):
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListInstanceTypes(request_, timeout=10)
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in caught.value.details()


def test_a_page_token_only_continues_its_own_query(stub):
    first = stub.ListInstanceTypes(pb.ListInstanceTypesRequest(page_size=2), timeout=10)
    with pytest.raises(grpc.RpcError) as caught:
        stub.ListInstanceTypes(
            pb.ListInstanceTypesRequest(page_size=2, page_token=first.next_page_token, min_gpus=1),
            timeout=10,
        )
    assert caught.value.code() is grpc.StatusCode.INVALID_ARGUMENT


def test_pretrained_models_carry_their_catalog_defaults(stub):
    response = stub.ListPretrainedModels(pb.ListPretrainedModelsRequest(), timeout=10)
    bert = next(m for m in response.models if m.id == "huggingface-spc-bert-base-cased")
    assert bert.task == "sentence-pair-classification"
    assert bert.batch_size_hyperparameter == "batch-size"
    assert bert.default_hyperparameters["epochs"] == 3
    assert bert.version == "2.0.3" and "sagemaker-python-sdk@v2.257.6" in bert.source
    assert [m.id for m in response.models] == sorted(m.id for m in response.models)


def test_diff_plans_lists_changed_fields(stub, source):
    base_source = source("valid.yaml")
    head_source = source(
        "valid.yaml", base_source.content.replace("ml.p3.8xlarge", "ml.p3.16xlarge")
    )
    base = stub.Compile(pb.CompileRequest(source=base_source), timeout=30).plan
    head = stub.Compile(pb.CompileRequest(source=head_source), timeout=30).plan
    same = stub.DiffPlans(pb.DiffPlansRequest(base=base, head=base), timeout=10)
    assert list(same.changes) == []
    changes = stub.DiffPlans(pb.DiffPlansRequest(base=base, head=head), timeout=10).changes
    by_path = {c.field_path: c for c in changes}
    change = by_path["sagemaker_request.ResourceConfig.InstanceType"]
    assert (change.base.string_value, change.head.string_value) == (
        "ml.p3.8xlarge",
        "ml.p3.16xlarge",
    )
    assert "job.training.compute.instance_type" in by_path
    # 16 per device x 8 GPUs instead of x 4
    assert by_path["sagemaker_request.HyperParameters.batch-size"].head.string_value == "128"
    assert [c.field_path for c in changes] == sorted(by_path)


def test_diff_plans_flags_the_risks_trainspec_diff_flags(stub, source, tmp_path):
    base_source = source("valid.yaml")
    head_text = base_source.content.replace("ml.p3.8xlarge", "ml.g4dn.16xlarge").replace(
        "role/SageMakerTraining", "role/Other"
    )
    base = stub.Compile(pb.CompileRequest(source=base_source), timeout=30).plan
    head = stub.Compile(pb.CompileRequest(source=source("b.yaml", head_text)), timeout=30).plan
    risks = stub.DiffPlans(pb.DiffPlansRequest(base=base, head=head), timeout=10).risks
    (tmp_path / "a.yaml").write_text(base_source.content)
    (tmp_path / "b.yaml").write_text(head_text)
    cli = subprocess.run(
        [sys.executable, "-m", "trainspec", "diff", "a.yaml", "b.yaml", "--format", "json"],
        capture_output=True,
        cwd=tmp_path,
        timeout=60,
    )
    (spec,) = json.loads(cli.stdout)["specs"]
    assert [(r.code, r.field_path, r.message) for r in risks] == [
        (r["code"], r["path"], r["message"]) for r in spec["risks"]
    ]
    assert {r.code for r in risks} == {"instance_family_change", "role_change"}

    policy = review_pb2.ReviewPolicy(ignore=["role_change"])
    reviewed = stub.DiffPlans(pb.DiffPlansRequest(base=base, head=head, review=policy))
    assert [r.code for r in reviewed.risks] == ["instance_family_change"]
    assert not stub.DiffPlans(pb.DiffPlansRequest(base=base, head=base), timeout=10).risks


@pytest.mark.parametrize(
    ("review", "field"),
    [
        (review_pb2.ReviewPolicy(ignore=["spot_of"]), "review.ignore[0]"),
        (review_pb2.ReviewPolicy(cost_increase_percent=-1), "review.cost_increase_percent"),
        (review_pb2.ReviewPolicy(cost_increase_amount=float("nan")), "review.cost_increase_amount"),
    ],
)
def test_diff_plans_refuses_a_review_policy_a_defaults_file_could_not_hold(stub, review, field):
    with pytest.raises(grpc.RpcError) as error:
        stub.DiffPlans(pb.DiffPlansRequest(review=review), timeout=10)
    assert error.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert field in error.value.details()
