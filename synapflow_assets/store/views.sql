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

-- The change of each track's head volume between its first and last session in view (status present or new,
-- with a volume), size_change = last / first - 1 (unit 1, +1.0 = doubled), and its 95% interval from the
-- measurement noise of one session (CV 7.6%, bench/features.py): exp(ln ratio -/+ 1.96 sqrt(2 ln(1 + cv^2))) - 1.
-- The same as synapflow_assets.features.size_change.size_changes (tested equal).
CREATE OR REPLACE VIEW size_changes AS
WITH sized AS (
    SELECT t.animal, t.track_id, t.session, t.session_index, f.head_volume_um3 AS v
    FROM tracks t JOIN spine_features f ON f.spine_key = t.spine_key
    WHERE t.status IN ('present', 'new') AND isfinite(f.head_volume_um3) AND f.head_volume_um3 > 0
), ends AS (
    SELECT animal, track_id, arg_min(session, session_index) AS first_session,
           arg_max(session, session_index) AS last_session, count(DISTINCT session_index) AS n_sessions,
           arg_min(v, session_index) AS size_first, arg_max(v, session_index) AS size_last
    FROM sized GROUP BY animal, track_id HAVING count(DISTINCT session_index) >= 2
), noise AS (SELECT 1.959963984540054 * sqrt(2 * ln(1 + 0.076 * 0.076)) AS half)
SELECT animal, track_id, first_session, last_session, n_sessions, size_first, size_last,
       size_last / size_first - 1 AS size_change,
       exp(ln(size_last / size_first) - half) - 1 AS size_change_low,
       exp(ln(size_last / size_first) + half) - 1 AS size_change_high
FROM ends, noise ORDER BY animal, track_id;
