-- Named answers to the common questions.
CREATE OR REPLACE VIEW spines_per_session AS
SELECT s.animal, s.session, s.acquired_at, count(f.spine_id) AS n_spines, any_value(s.spines_per_um) AS spines_per_um,
       median(f.size) AS median_size, median(f.head_to_dendrite_um) AS median_head_to_dendrite_um
FROM sessions s LEFT JOIN spine_features f USING (animal, session)
GROUP BY s.animal, s.session, s.acquired_at
ORDER BY s.animal, s.acquired_at, s.session;

CREATE OR REPLACE VIEW survival_curve AS
SELECT animal, session, session_index, survival_fraction, survival_low, survival_high,
       formation_rate, formation_low, formation_high, elimination_rate, elimination_low, elimination_high, turnover
FROM dynamics ORDER BY animal, session_index;

CREATE OR REPLACE VIEW uncertain_events AS
SELECT animal, session, session_index, track_id, status, redetected, confidence, reason, x_um, y_um, z_um,
       corrected_by, corrected_at
FROM tracks WHERE confidence IS NOT NULL ORDER BY confidence, animal, session_index, track_id;

CREATE OR REPLACE VIEW size_trajectories AS
WITH persistent AS (
    SELECT animal, track_id FROM tracks GROUP BY animal, track_id
    HAVING count(*) FILTER (WHERE detected) >= 2 AND count(*) FILTER (WHERE status IN ('eliminated', 'new')) = 0
)
SELECT t.animal, t.track_id, t.session, t.session_index, f.size, f.head_to_dendrite_um, f.type
FROM tracks t JOIN persistent USING (animal, track_id)
JOIN spine_features f ON f.spine_key = t.spine_key
ORDER BY t.animal, t.track_id, t.session_index;
