rule report:
    input:
        metrics=per_model("reports/effects/{effect}/{arch}/metrics.json"),
        figures=per_model(
            "reports/effects/{effect}/{arch}/{figure}.png",
            figure=["melspec", "amplitude", "error_spectrum", "loss"],
        ),
        excerpts=per_model(
            "reports/effects/{effect}/{arch}/excerpt/{signal}.wav",
            signal=["clean", "effect", "model"],
        ),
        code=stage_code("report"),
    output:
        html="reports/index.html",
        csv="reports/metrics.csv",
    params:
        stage_params("report"),
    resources:
        **stage_resources("report"),
    log:
        "logs/report.log",
    shell:
        "deepfx --log {log} report --reports reports"
