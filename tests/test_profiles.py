"""Device profiles: loading, overrides, round trips and strict rejection of bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from pcm_sim.profiles import DeviceProfile, ProfileError, list_profiles, load_profile

SHIPPED = ["ideal", "pcm_aggressive", "pcm_hermes2023", "pcm_nandakumar2019"]


def test_shipped_profiles_load_and_round_trip() -> None:
    assert set(SHIPPED) <= set(list_profiles())
    for name in SHIPPED:
        profile = load_profile(name)
        assert profile.name == name
        assert DeviceProfile.from_dict(profile.to_dict()) == profile
        assert yaml.safe_load(yaml.safe_dump(profile.to_dict())) == profile.to_dict()


def test_ideal_is_ideal_and_nandakumar_is_not() -> None:
    assert load_profile("ideal").is_ideal
    assert not load_profile("pcm_nandakumar2019").is_ideal


def test_nandakumar_constants_match_the_paper() -> None:
    p = load_profile("pcm_nandakumar2019")
    assert p.device.g_max_us == 25.0
    assert p.drift.t0_s == 20.0
    assert p.read_noise.t_read_s == 250e-9
    assert p.programming.sigma_us.pieces[0].coeffs == (0.26348, 1.9650, -1.1731)


def test_dotted_overrides_apply_and_do_not_mutate() -> None:
    base = load_profile("pcm_nandakumar2019")
    changed = load_profile(
        "pcm_nandakumar2019", overrides={"drift.scale": 2.0, "periphery.adc_bits": 6}
    )
    assert changed.drift.scale == 2.0 and changed.periphery.adc_bits == 6
    assert base.drift.scale == 1.0
    with pytest.raises(ProfileError, match="unknown"):
        base.with_overrides({"drift.nope": 1.0})
    with pytest.raises(ProfileError, match="adc_bits"):
        base.with_overrides({"periphery.adc_bits": 40})


def _write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "bad.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def _valid_dict() -> dict:
    return load_profile("pcm_nandakumar2019").to_dict()


@pytest.mark.parametrize(
    ("mutate", "fragment"),
    [
        (lambda d: d["device"].update(g_max_us=0.0), "device.g_max_us"),
        (lambda d: d["device"].update(g_max_us=float("nan")), "device.g_max_us"),
        (lambda d: d["device"].update(g_max_us=float("inf")), "device.g_max_us"),
        (lambda d: d["device"].update(g_max_us="big"), "device.g_max_us"),
        (lambda d: d["periphery"].update(adc_bits=99), "periphery.adc_bits"),
        (lambda d: d["tile"].update(rows=10**9), "tile.rows"),
        (lambda d: d["tile"].update(rows=0), "tile.rows"),
        (lambda d: d["device"].update(colour="red"), "unknown key 'colour'"),
        (lambda d: d.pop("drift"), "drift: missing required field"),
        (lambda d: d["read_noise"].update(model="sometimes"), "read_noise.model: expected"),
        (lambda d: d["read_noise"].update(model=True), "read_noise.model"),
        (lambda d: d["read_noise"].update(read_period_s=0.0), "read_noise.read_period_s"),
        (
            lambda d: d["read_noise"].update(per_sample=False),
            "read_noise.per_sample: removed, use read_noise.model",
        ),
        (lambda d: d["drift"].update(nu_mean=[]), "drift.nu_mean"),
        (lambda d: d["device"].update(stuck_at_gmin_fraction=1.5), "stuck_at_gmin_fraction"),
    ],
)
def test_bad_fields_are_named(tmp_path: Path, mutate, fragment: str) -> None:
    data = _valid_dict()
    mutate(data)
    path = _write(tmp_path, yaml.safe_dump(data))
    with pytest.raises(ProfileError) as info:
        load_profile(path)
    message = str(info.value)
    assert fragment in message
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("device: [unclosed", "malformed YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        (b"\x00\x01\x02\xff\xfe binary", "not"),
        ("a: &x [1,2]\nb: *x\n", "aliases are not allowed"),
        ("", "expected a mapping"),
    ],
)
def test_malformed_files_are_rejected(tmp_path: Path, text: str | bytes, fragment: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ProfileError, match=fragment):
        load_profile(path)


def test_alias_bomb_is_rejected_fast(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for i in range(1, 9):
        prev, cur = chr(ord("a") + i - 1), chr(ord("a") + i)
        lines.append(f"{cur}: &{cur} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]")
    path = _write(tmp_path, "\n".join(lines))
    with pytest.raises(ProfileError, match="aliases"):
        load_profile(path)


def test_unknown_profile_name_lists_the_known_ones() -> None:
    with pytest.raises(ProfileError, match="pcm_nandakumar2019"):
        load_profile("no_such_chip")
