-- The feature store (schema version 2, `layout_version.SCHEMA_VERSION`: a change here needs a new version and its
-- step in `upgrade.sql`). Every row carries its lineage: animal, session, the Dagster run
-- that wrote it, the asset's code version, the detector model and version, the input
-- data versions (JSON) it was computed from, and when. ``spine_key`` = hash(animal, session,
-- spine_id) is a single integer join key between spine tables (set on insert).
CREATE TABLE IF NOT EXISTS sessions (
    animal VARCHAR, session VARCHAR, acquired_at VARCHAR,
    layers INTEGER, height INTEGER, width INTEGER, voxel_z_um DOUBLE, voxel_y_um DOUBLE, voxel_x_um DOUBLE,
    n_spines INTEGER, dendrite_length_um DOUBLE, spines_per_um DOUBLE,
    run_id VARCHAR, code_version VARCHAR, model VARCHAR, model_version VARCHAR, input_versions VARCHAR, computed_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS detections (
    animal VARCHAR, session VARCHAR, spine_id BIGINT, layer INTEGER, xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE,
    score DOUBLE, type VARCHAR, interpolated BOOLEAN,
    run_id VARCHAR, code_version VARCHAR, model VARCHAR, model_version VARCHAR, input_versions VARCHAR, computed_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS spines (
    animal VARCHAR, session VARCHAR, spine_id BIGINT, spine_key UBIGINT, first_layer INTEGER, last_layer INTEGER, n_layers INTEGER,
    xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE, x_px DOUBLE, y_px DOUBLE, z_px DOUBLE,
    x_um DOUBLE, y_um DOUBLE, z_um DOUBLE, peak_layer INTEGER, mean_score DOUBLE, type VARCHAR,
    run_id VARCHAR, code_version VARCHAR, model VARCHAR, model_version VARCHAR, input_versions VARCHAR, computed_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS spine_features (
    animal VARCHAR, session VARCHAR, spine_id BIGINT, spine_key UBIGINT, x_um DOUBLE, y_um DOUBLE, z_um DOUBLE,
    size DOUBLE, size_n_layers INTEGER, head_to_dendrite_um DOUBLE, head_to_dendrite_px DOUBLE,
    distance_reason VARCHAR, distance_n_layers INTEGER, head_width_um DOUBLE, type VARCHAR, type_source VARCHAR,
    peak_intensity DOUBLE, dendrite_brightness DOUBLE, dendrite_position_um DOUBLE, dendrite_component BIGINT,
    run_id VARCHAR, code_version VARCHAR, model VARCHAR, model_version VARCHAR, input_versions VARCHAR, computed_at TIMESTAMPTZ,
    head_diameter_um DOUBLE, head_diameter_fwhm_um DOUBLE, neck_length_um DOUBLE, head_volume_um3 DOUBLE,
    size_shaft_um DOUBLE, shaft_diameter_um DOUBLE
);
CREATE TABLE IF NOT EXISTS tracks (
    animal VARCHAR, session VARCHAR, session_index INTEGER, track_id BIGINT, spine_id BIGINT, spine_key UBIGINT, status VARCHAR, detected BOOLEAN,
    redetected BOOLEAN, x_um DOUBLE, y_um DOUBLE, z_um DOUBLE, xmin DOUBLE, ymin DOUBLE, xmax DOUBLE, ymax DOUBLE,
    first_layer INTEGER, last_layer INTEGER, evidence_score DOUBLE, contrast_ratio DOUBLE, confidence DOUBLE, reason VARCHAR,
    computed_status VARCHAR, corrected_by VARCHAR, corrected_at TIMESTAMPTZ,
    other_session_index INTEGER, other_xmin DOUBLE, other_ymin DOUBLE, other_xmax DOUBLE, other_ymax DOUBLE, other_layer INTEGER,
    run_id VARCHAR, code_version VARCHAR, model VARCHAR, model_version VARCHAR, input_versions VARCHAR, computed_at TIMESTAMPTZ
);
CREATE TABLE IF NOT EXISTS dynamics (
    animal VARCHAR, session VARCHAR, session_index INTEGER, n_in_view INTEGER, n_reference INTEGER,
    gained INTEGER, lost INTEGER, formation_rate DOUBLE, elimination_rate DOUBLE, turnover DOUBLE,
    n_survival_reference INTEGER, n_surviving INTEGER, survival_fraction DOUBLE,
    new_persistent INTEGER, new_transient INTEGER, mean_size_change DOUBLE,
    formation_low DOUBLE, formation_high DOUBLE, elimination_low DOUBLE, elimination_high DOUBLE,
    survival_low DOUBLE, survival_high DOUBLE,
    run_id VARCHAR, code_version VARCHAR, model VARCHAR, model_version VARCHAR, input_versions VARCHAR, computed_at TIMESTAMPTZ
);
-- Corrections a person made to track statuses (``review --apply``). They are never deleted by a
-- recomputation: ``spine_dynamics`` applies each to the track at the same place (within 1 um) of its session.
CREATE TABLE IF NOT EXISTS corrections (
    animal VARCHAR, session VARCHAR, track_id BIGINT, x_um DOUBLE, y_um DOUBLE, z_um DOUBLE,
    computed_status VARCHAR, status VARCHAR, corrected_by VARCHAR, corrected_at TIMESTAMPTZ, note VARCHAR
);
