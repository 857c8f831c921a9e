"""Reference baselines: known totals from the sourced tables, scaling rules and refusals."""

from __future__ import annotations

import polars as pl
import pytest

from dashboard.baselines import (
    ReferenceUnavailableError,
    burden,
    burden_metric,
    parse_reference,
    population,
    targets,
)
from dashboard.reference import load_reference


def weights(frame: pl.DataFrame, *dims: str) -> dict:
    return {tuple(r[d] for d in dims): r["ref_weight"] for r in frame.to_dicts()}


def test_state_population_2026_and_2011() -> None:
    by_state = weights(population(["state"]).frame, "state")
    assert len(by_state) == 36
    assert by_state[("IN-KA",)] == pytest.approx(
        load_reference().states.filter(pl.col("iso_code") == "IN-KA")["proj2026_total"][0]
    )
    assert sum(by_state.values()) == 1_425_907_000  # SOURCES.md: the 36 units' persons sum
    census = weights(population(["sex"], source="census2011").frame, "sex")
    assert census == {("F",): 587_584_719, ("M",): 623_270_258}  # Census 2011 India row


def test_age_structure_is_scaled_to_2026_totals() -> None:
    assam = population(["sex", "age_band"], states=["IN-AS"]).frame
    totals = assam.group_by("sex").agg(pl.col("ref_weight").sum())
    assert weights(totals, "sex") == {
        ("F",): pytest.approx(18_056_000),
        ("M",): pytest.approx(18_661_000),
    }
    census = population(["sex", "age_band"], states=["IN-AS"], source="census2011").frame
    raw = load_reference().age_sex.filter(
        (pl.col("iso_code") == "IN-AS") & (pl.col("age_band") == "0-4") & (pl.col("sex") == "male")
    )["population"][0]
    assert weights(census, "sex", "age_band")[("M", "0-4")] == raw
    # same shape, new size: the 0-4 male share of Assam's males is unchanged by the scaling
    share_2011 = raw / census.filter(pl.col("sex") == "M")["ref_weight"].sum()
    share_2026 = weights(assam, "sex", "age_band")[("M", "0-4")] / 18_661_000
    assert share_2026 == pytest.approx(share_2011)


def test_urban_rural_2011_and_refused_crosses() -> None:
    area = weights(population(["area_type"], source="census2011").frame, "area_type")
    assert area == {("rural",): 833_748_852, ("urban",): 377_106_125}
    with pytest.raises(ReferenceUnavailableError, match="do not cross urban/rural with sex"):
        population(["sex", "area_type"])
    with pytest.raises(ReferenceUnavailableError, match="no population reference by modality"):
        population(["modality"])


def test_burden_tb_uses_latest_complete_notifications() -> None:
    assert burden_metric("tuberculosis") == ("notified_cases", "2022")
    tb = weights(burden("tuberculosis").frame, "state")
    raw = load_reference().disease_burden.filter(
        (pl.col("condition") == "tuberculosis")
        & (pl.col("metric") == "notified_cases")
        & (pl.col("year") == "2022")
        & (pl.col("iso_code") == "IN-UP")
    )["value"][0]
    assert tb[("IN-UP",)] == raw
    assert len(tb) == 36


def test_burden_from_prevalence_is_cases_among_adults() -> None:
    ref = load_reference()
    glucose = weights(burden("high_blood_glucose").frame, "state")
    rows = ref.disease_burden.filter(
        (pl.col("condition") == "high_blood_glucose") & (pl.col("iso_code") == "IN-KL")
    )
    men = rows.filter(pl.col("metric").str.contains("_men_"))["value"][0]
    women = rows.filter(pl.col("metric").str.contains("_women_"))["value"][0]
    adults = ref.age_sex.filter(
        (pl.col("iso_code") == "IN-KL")
        & ~pl.col("age_band").is_in(["0-4", "5-9", "10-14", "age_not_stated"])
    )
    male = adults.filter(pl.col("sex") == "male")["population"].sum()
    female = adults.filter(pl.col("sex") == "female")["population"].sum()
    assert glucose[("IN-KL",)] == pytest.approx(men / 100 * male + women / 100 * female)


def test_targets_file(tmp_path) -> None:
    good = tmp_path / "t.csv"
    good.write_text("state,target\nIN-AS,0.2\nIN-KA,0.8\n")
    assert weights(targets(good, ["state"]).frame, "state") == {("IN-AS",): 0.2, ("IN-KA",): 0.8}
    bad = tmp_path / "bad.csv"
    bad.write_text("state,target\nIN-AS,-1\n")
    with pytest.raises(ReferenceUnavailableError, match="target must be a number"):
        targets(bad, ["state"])
    with pytest.raises(ReferenceUnavailableError, match="missing sex"):
        targets(good, ["state", "sex"])


def test_parse_reference_specs() -> None:
    assert "Census of India 2011" in parse_reference("population:census2011", ["sex"]).description
    assert parse_reference("burden:cancer_all_sites", ["state"]).frame.height == 36
    with pytest.raises(ReferenceUnavailableError, match="known by state only"):
        parse_reference("burden:tuberculosis", ["sex"])
    with pytest.raises(ReferenceUnavailableError, match="no state-wise burden figures for 'copd'"):
        parse_reference("burden:copd", ["state"])
    with pytest.raises(ReferenceUnavailableError, match="unknown reference 'census'"):
        parse_reference("census", ["state"])
