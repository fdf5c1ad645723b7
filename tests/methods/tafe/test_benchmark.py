"""TAFE-Net's benchmark (dynnet_d2/methods/tafe/benchmark.py): every arm's config builds with its
options, the metrics are read back per split from a run folder, and the report's cells are the
mean ± Student-t interval over the splits."""
import json

from dynnet_d2.config import load_config
from dynnet_d2.methods.tafe import benchmark


def test_every_arm_is_a_config_with_its_options():
    table = benchmark.arms()
    assert {"zsl1_tafe", "zsl3_bilinear", "zsl2_tafe_beta0", "pairs_color_visualproduct",
            "pairs_texture_tafe_beta0"} <= set(table)
    backbone = load_config(table.pop(benchmark.FEWSHOT_BACKBONE).config)
    assert backbone.DATASETS.TRAIN == ("fashion_mnist_fewshot_base_train",)
    for name, arm in table.items():
        cfg = load_config(arm.config, list(arm.opts))
        if name.startswith("zsl"):
            assert cfg.DATASETS.TRAIN == (f"shapes_zsl{name[3]}_train",)
        else:
            assert cfg.DATASETS.TRAIN == (f"shapes_pairs_{name.split('_')[1]}_train",)
        assert cfg.MODEL.TAFE.BETA == (0.0 if name.endswith("beta0") else 0.1)
    assert set(benchmark.selected(table, ["pairs_texture"])) == {
        f"pairs_texture_{h}{seed}" for h in ("tafe", "bilinear", "visualproduct")
        for seed in ("", "_seed1", "_seed2")} | {f"pairs_texture_{h}" for h in (
            "tafe_beta0", "seenbackbone", "tafe_structured", "bilinear_structured",
            "tafe_seenfeatures", "bilinear_seenfeatures", "visualproduct_seenfeatures",
            "tafe_structured_seenfeatures")}
    seed2 = load_config(table["zsl3_bilinear_seed2"].config,
                        list(table["zsl3_bilinear_seed2"].opts))
    assert seed2.SEED == 2 and seed2.FEWSHOT.SPLIT == 3


def test_table55_arms_vary_only_the_encoding_or_the_features():
    table = benchmark.arms()
    backbone = load_config(table["pairs_color_seenbackbone"].config)
    assert backbone.MODEL.BACKBONE.FREEZE_AT == 0 and not backbone.MODEL.CLASSIFIER.CACHE_FEATURES
    assert backbone.DATASETS.TRAIN == ("shapes_pairs_color_train",)
    for name, arm in table.items():
        if not name.startswith("pairs_") or name.endswith(("seenbackbone", "beta0")):
            continue
        cfg = load_config(arm.config, list(arm.opts))
        plain = load_config(table[name.replace("_structured", "").replace("_seenfeatures", "")]
                            .config)
        assert cfg.MODEL.CLASSIFIER.HEAD == plain.MODEL.CLASSIFIER.HEAD
        assert cfg.MODEL.CLASSIFIER.CACHE_FEATURES and cfg.MODEL.BACKBONE.FREEZE_AT == 5
        assert cfg.MODEL.TAFE.DESCRIPTIONS == (
            f"configs/TAFE/shapes_{name.split('_')[1]}pairs_structured.json"
            if "_structured" in name else "")
        assert arm.after == (f"pairs_{name.split('_')[1]}_seenbackbone"
                             if name.endswith("_seenfeatures") else None)


def _write_run(folder, values):
    for split, h in values.items():
        path = folder / "inference" / f"shapes_zsl1_{split}" / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps({"classification": {
            "top1": 1.0, "zsl_top1": h + 1, "acc_seen": 50.0, "acc_unseen": 10.0, "H": h,
            "acc-circle": 3.0, "num_images": 7}}))
    (folder / "inference" / "results.json").write_text("{}")


def test_metrics_are_read_back_per_split_and_reported_with_a_t_interval(tmp_path):
    for split, h in ((1, 10.0), (2, 20.0), (3, 30.0)):
        _write_run(tmp_path / f"zsl{split}_tafe", {"val": h - 5, "test": h})
    metrics = benchmark.run_metrics(tmp_path / "zsl1_tafe")
    assert metrics["test"] == {"top1": 1.0, "zsl_top1": 11.0, "acc_seen": 50.0,
                               "acc_unseen": 10.0, "H": 10.0, "num_images": 7}
    assert metrics["val"]["H"] == 5.0
    record = {"results": {f"zsl{s}_tafe": benchmark.run_metrics(tmp_path / f"zsl{s}_tafe")
                          for s in (1, 2, 3)}}
    table = benchmark.report(record)
    # H over the splits: mean 20, sample std 10, t(0.975, 2) = 4.303 -> 4.303 * 10 / sqrt(3)
    assert "| TAFE-Net | 3 | 21.0 ± 24.8 | 50.0 ± 0.0 | 10.0 ± 0.0 | 20.0 ± 24.8 | 15.0 ± 24.8 |" \
        in table


def test_pair_rows_are_the_mean_over_the_seeds():
    def run(top1):
        return {"test": {"zsl_top1": top1, "zsl_top2": 1.0, "zsl_top3": 2.0, "zsl_mAP": 3.0,
                         "H": 4.0}, "val": {"zsl_top1": top1}}

    record = {"results": {"pairs_color_bilinear": run(10.0), "pairs_color_bilinear_seed1":
                          run(20.0), "pairs_color_bilinear_seed2": run(30.0)}}
    # mean 20, sample std 10, t(0.975, 2) = 4.303: 4.303 * 10 / sqrt(3) = 24.8
    assert ("| bilinear compatibility (label embedding) | 3 | 20.0 ± 24.8 | 1.0 ± 0.0 | "
            "2.0 ± 0.0 | 3.0 ± 0.0 | 4.0 ± 0.0 | 20.0 ± 24.8 |") in benchmark.report(record)


def test_table55_report_lists_the_finished_variants(tmp_path):
    metrics = {"zsl_mAP": 30.0, "zsl_top1": 20.0, "zsl_top2": 35.0, "zsl_top3": 45.0, "H": 5.0}
    record = {"results": {
        "pairs_color_tafe": {"test": metrics, "val": {"zsl_top1": 19.0}},
        "pairs_color_tafe_structured_seenfeatures": {"test": {**metrics, "zsl_top1": 25.0},
                                                     "val": {"zsl_top1": 21.0}},
        "pairs_color_seenbackbone": {"val": {"top1": 70.0}, "test": {"zsl_top1": 0.0}}}}
    table = benchmark.table55_report(record)
    assert ("| one-hot | ImageNet MobileNetV2 | TAFE-Net | 30.0 | 20.0 | 35.0 | 45.0 | 5.0 | "
            "19.0 |") in table
    assert ("| attribute-structured | fine-tuned on the seen pairs | TAFE-Net | 30.0 | 25.0 | "
            "35.0 | 45.0 | 5.0 | 21.0 |") in table
    assert "top-1 70.0 on the validation crops" in table and "texture" not in table
    assert benchmark.table55_report({"results": {"pairs_color_tafe": record["results"][
        "pairs_color_tafe"]}}) == ""  # nothing beyond the main table's arms yet


def test_task_embedding_points_are_each_images_embedding_under_each_task(tmp_path):
    import torch

    from dynnet_d2.methods.tafe import TAFEHead
    from dynnet_d2.methods.tafe.analysis import plot_task_embeddings, task_embedding_points
    torch.manual_seed(0)
    head = TAFEHead(in_channels=4, descriptions=torch.rand(3, 2), seen=None,
                    embedding_dims=(8,), feature_dims=(5,), beta=0.1).train()
    features = torch.rand(12, 4)
    points = task_embedding_points(head, features, [2, 0])
    assert points.shape == (24, 5) and head.training  # its mode restored
    tafe, _ = head.eval().embeddings(features)
    torch.testing.assert_close(torch.from_numpy(points[:12]), tafe[:, 2].detach())
    torch.testing.assert_close(torch.from_numpy(points[12:]), tafe[:, 0].detach())
    path = plot_task_embeddings(head, features, torch.arange(12) % 3, [2, 0], list("abc"),
                                tmp_path / "fig.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
