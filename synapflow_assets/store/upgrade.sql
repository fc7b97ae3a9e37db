-- Schema 1 -> 2: the columns added to stores over time (before the schema was stamped), run once by
-- `python -m synapflow_assets upgrade` after the CREATE TABLE IF NOT EXISTS of schema.sql (tables an old store
-- lacks, e.g. corrections) and before views.sql.
-- stores written before distance along the dendrite existed
ALTER TABLE spine_features ADD COLUMN IF NOT EXISTS dendrite_position_um DOUBLE;
ALTER TABLE spine_features ADD COLUMN IF NOT EXISTS dendrite_component BIGINT;
-- stores written before the spine morphology existed
ALTER TABLE spine_features ADD COLUMN IF NOT EXISTS head_diameter_um DOUBLE;
ALTER TABLE spine_features ADD COLUMN IF NOT EXISTS head_diameter_fwhm_um DOUBLE;
ALTER TABLE spine_features ADD COLUMN IF NOT EXISTS neck_length_um DOUBLE;
ALTER TABLE spine_features ADD COLUMN IF NOT EXISTS head_volume_um3 DOUBLE;
ALTER TABLE spine_features ADD COLUMN IF NOT EXISTS size_shaft_um DOUBLE;
ALTER TABLE spine_features ADD COLUMN IF NOT EXISTS shaft_diameter_um DOUBLE;
-- stores written before evidence, confidences and corrections existed
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS redetected BOOLEAN;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS x_um DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS y_um DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS z_um DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS xmin DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS ymin DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS xmax DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS ymax DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS first_layer INTEGER;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS last_layer INTEGER;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS evidence_score DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS contrast_ratio DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS confidence DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS reason VARCHAR;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS computed_status VARCHAR;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS corrected_by VARCHAR;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS corrected_at TIMESTAMPTZ;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS other_session_index INTEGER;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS other_xmin DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS other_ymin DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS other_xmax DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS other_ymax DOUBLE;
ALTER TABLE tracks ADD COLUMN IF NOT EXISTS other_layer INTEGER;
ALTER TABLE dynamics ADD COLUMN IF NOT EXISTS formation_low DOUBLE;
ALTER TABLE dynamics ADD COLUMN IF NOT EXISTS formation_high DOUBLE;
ALTER TABLE dynamics ADD COLUMN IF NOT EXISTS elimination_low DOUBLE;
ALTER TABLE dynamics ADD COLUMN IF NOT EXISTS elimination_high DOUBLE;
ALTER TABLE dynamics ADD COLUMN IF NOT EXISTS survival_low DOUBLE;
ALTER TABLE dynamics ADD COLUMN IF NOT EXISTS survival_high DOUBLE;
