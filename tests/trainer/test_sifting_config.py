"""Sifting configs and the TRAINSPEC_SIFTING edge: defaults, validation, mode selection."""

import json

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset
from trainspec.trainer import sifting
from trainspec.v1 import job_spec_pb2


@pytest.mark.parametrize(
    ("build", "field"),
    [
        (lambda: sifting.RelativeProbabilisticSiftConfig(beta_value=0), "beta_value"),
        (lambda: sifting.RelativeProbabilisticSiftConfig(beta_value=-1), "beta_value"),
        (lambda: sifting.RelativeProbabilisticSiftConfig(beta_value="1"), "beta_value"),
        (lambda: sifting.RelativeProbabilisticSiftConfig(beta_value=float("nan")), "beta_value"),
        (lambda: sifting.RelativeProbabilisticSiftConfig(loss_history_length=0), "loss_history"),
        (lambda: sifting.RelativeProbabilisticSiftConfig(loss_history_length=2.5), "loss_history"),
        (lambda: sifting.SiftingBaseConfig(sift_delay=-1), "sift_delay"),
        (lambda: sifting.SiftingBaseConfig(repeat_delay_per_epoch=1), "repeat_delay_per_epoch"),
        (lambda: sifting.LossConfig(sift_config=3), "sift_config"),
        (lambda: sifting.LossConfig(sift_config={"delay": 3}), "delay"),
        (lambda: sifting.PruneConfig(rule="quota", keep_fraction=0), "keep_fraction"),
        (lambda: sifting.PruneConfig(rule="quota", keep_fraction=1.5), "keep_fraction"),
        (lambda: sifting.PruneConfig(anneal_fraction=1), "anneal_fraction"),
        (lambda: sifting.PruneConfig(reweight="sum"), "reweight"),
        (lambda: sifting.RandomDropConfig(keep_fraction=-0.1), "keep_fraction"),
    ],
)
def test_invalid_configs_name_the_field(build, field):
    with pytest.raises(ValueError, match=field):
        build()


def test_sagemaker_shapes_accept_dicts():
    config = sifting.RelativeProbabilisticSiftConfig(
        beta_value=1,
        loss_history_length=50,
        loss_based_sift_config={"sift_config": {"sift_delay": 7}},
    )
    assert config.loss_based_sift_config == sifting.LossConfig(
        sift_config=sifting.SiftingBaseConfig(sift_delay=7)
    )
    assert config.sift_delay == 7
    assert sifting.SiftingBaseConfig().sift_delay == 1000  # SageMaker's documented default


def _proto_json(**fields):
    from google.protobuf import json_format

    message = job_spec_pb2.Sifting(**fields)
    return json_format.MessageToJson(message, preserving_proto_field_name=True)


def test_env_absent_or_empty_is_none():
    assert sifting.config_from_env({}) is None
    assert sifting.config_from_env({"TRAINSPEC_SIFTING": " "}) is None


def test_env_relative_from_real_proto_json():
    text = _proto_json(
        mode=job_spec_pb2.SIFTING_MODE_RELATIVE_PROBABILISTIC,
        beta_value=2.0,
        loss_history_length=64,
        sift_delay=5,
        repeat_delay_per_epoch=True,
    )
    config = sifting.config_from_env({"TRAINSPEC_SIFTING": text})
    assert config == sifting.RelativeProbabilisticSiftConfig(
        beta_value=2.0,
        loss_history_length=64,
        loss_based_sift_config=sifting.LossConfig(
            sifting.SiftingBaseConfig(sift_delay=5, repeat_delay_per_epoch=True)
        ),
    )


def test_env_defaults_and_camel_case():
    config = sifting.config_from_env({"TRAINSPEC_SIFTING": "{}"})
    assert config == sifting.RelativeProbabilisticSiftConfig(
        loss_based_sift_config=sifting.LossConfig(sifting.SiftingBaseConfig(sift_delay=0))
    )
    text = json.dumps({"mode": "SIFTING_MODE_PRUNE", "keepFraction": 0.6})
    assert sifting.config_from_env({"TRAINSPEC_SIFTING": text}) == sifting.PruneConfig(
        0.6, rule="quota"
    )
    text = _proto_json(mode=job_spec_pb2.SIFTING_MODE_RANDOM, keep_fraction=0.5)
    assert sifting.config_from_env({"TRAINSPEC_SIFTING": text}) == sifting.RandomDropConfig(0.5)


def test_env_zero_values_mean_unset():
    # Serializers that print every field send the proto3 zeros.
    text = json.dumps({"mode": "SIFTING_MODE_PRUNE", "beta_value": 0, "sift_delay": 0})
    assert sifting.config_from_env({"TRAINSPEC_SIFTING": text}) == sifting.PruneConfig()


def test_prune_defaults_to_infobatch_and_the_env_keep_fraction_asks_for_the_quota():
    # The default rule was chosen by bench/sifting.py's pre-registered run (issue 25).
    config = sifting.PruneConfig()
    assert (config.rule, config.probability, config.keep_fraction) == ("infobatch", 0.5, None)
    env = sifting.config_from_env({"TRAINSPEC_SIFTING": '{"mode": "SIFTING_MODE_PRUNE"}'})
    assert env.rule == "infobatch"
    text = '{"mode": "SIFTING_MODE_PRUNE", "keep_fraction": 0.5}'
    env = sifting.config_from_env({"TRAINSPEC_SIFTING": text})
    assert (env.rule, env.keep) == ("quota", 0.5)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ('{"beta_value": -1}', "beta_value"),
        ('{"loss_history_length": -3}', "loss_history_length"),
        ('{"loss_history_length": "many"}', "loss_history_length"),
        ('{"sift_delay": -2}', "sift_delay"),
        ('{"mode": "SIFTING_MODE_PRUNE", "keep_fraction": 2}', "keep_fraction"),
        ('{"mode": "SIFTING_MODE_PRUNE", "anneal_fraction": 1.0}', "anneal_fraction"),
        ('{"mode": "SIFTING_MODE_PRUNE", "beta_value": 1}', "beta_value"),
        ('{"keep_fraction": 0.5}', "keep_fraction"),
        ('{"mode": "FAST"}', "mode"),
        ('{"beta": 1}', "beta"),
        ("[1]", "JSON object"),
        ("{", "not valid JSON"),
    ],
)
def test_env_bad_values_name_the_field(payload, field):
    with pytest.raises(ValueError, match=field) as err:
        sifting.config_from_env({"TRAINSPEC_SIFTING": payload})
    assert "TRAINSPEC_SIFTING" in str(err.value)


class _Loss(sifting.Loss):
    def loss(self, model, transformed_batch, original_batch=None):
        x, y = transformed_batch
        return torch.nn.functional.cross_entropy(model(x), y, reduction="none")


def test_from_config_picks_the_loader():
    data = DataLoader(TensorDataset(torch.randn(8, 3), torch.zeros(8, dtype=torch.long)), 4)
    model = torch.nn.Linear(3, 2)
    relative = sifting.from_config(sifting.RelativeProbabilisticSiftConfig(), data, model, _Loss())
    assert isinstance(relative, sifting.SiftingDataloader)
    prune = sifting.from_config(sifting.PruneConfig(), data, model, epochs=4, seed=1)
    assert isinstance(prune, sifting.PruningDataloader)
    assert prune.anneal_epochs == 1
    with pytest.raises(ValueError, match="config must be"):
        sifting.from_config(object(), data, model)


def test_loader_arguments_are_checked_together():
    data = DataLoader(TensorDataset(torch.randn(8, 3)), 4)
    with pytest.raises(ValueError, match=r"model must be.*loss_impl must have"):
        sifting.SiftingDataloader(sifting.RelativeProbabilisticSiftConfig(), data)
    with pytest.raises(ValueError, match="epochs"):
        sifting.PruningDataloader(sifting.PruneConfig(), data, epochs=0)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="score_batches"):
            sifting.SiftingDataloader(
                sifting.RelativeProbabilisticSiftConfig(),
                data,
                model=torch.nn.Linear(3, 2),
                loss_impl=_Loss(),
                score_batches=bad,
            )
