-- Linked detections of every session in the reference tool's column layout, with the spine's features.
SELECT d.animal, d.session,
       d.spine_id AS id,
       d.session || '_layer' || lpad(CAST(d.layer AS VARCHAR), 2, '0') || '.png' AS filename,
       s.width, s.height, coalesce(d.type, 'spine') AS class, d.score,
       d.xmin, d.ymin, d.xmax, d.ymax,
       d.layer, d.interpolated,
       f.size, f.head_to_dendrite_um, f.distance_reason, f.type AS spine_type, f.x_um, f.y_um, f.z_um
FROM detections d
JOIN sessions s USING (animal, session)
LEFT JOIN spine_features f ON f.animal = d.animal AND f.session = d.session AND f.spine_id = d.spine_id
ORDER BY d.animal, d.session, d.layer, d.spine_id
