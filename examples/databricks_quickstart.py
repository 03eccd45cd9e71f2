# Databricks notebook source
# MAGIC %md
# MAGIC # MLflow on Azure Databricks, logged to Azure Machine Learning
# MAGIC
# MAGIC Every `mlflow.*` call in this notebook goes to an Azure Machine Learning workspace. The notebook
# MAGIC signs in as a service principal kept in a Databricks secret scope: no browser, and no secret in
# MAGIC the notebook.
# MAGIC
# MAGIC Once, before the first run:
# MAGIC
# MAGIC 1. Create a service principal and give it the **AzureML Data Scientist** role on the workspace.
# MAGIC 2. Keep its tenant id, application (client) id and client secret in a secret scope, under the keys
# MAGIC    `tenant-id`, `client-id` and `client-secret` (other names work with `--secret-keys`):
# MAGIC
# MAGIC    ```
# MAGIC    databricks secrets create-scope aml-sp
# MAGIC    databricks secrets put-secret aml-sp tenant-id
# MAGIC    databricks secrets put-secret aml-sp client-id
# MAGIC    databricks secrets put-secret aml-sp client-secret
# MAGIC    ```
# MAGIC
# MAGIC 3. Run the notebook with the parameter `workspace` set to the workspace's resource id
# MAGIC    (`/subscriptions/…/resourceGroups/…/providers/Microsoft.MachineLearningServices/workspaces/…`,
# MAGIC    on the workspace's **Properties** page in the Azure portal).

# COMMAND ----------

# MAGIC %pip install jupyter-amlflow

# COMMAND ----------

# DBTITLE 1,Which workspace
dbutils.widgets.text("workspace", "", "Azure ML workspace resource id")
workspace = dbutils.widgets.get("workspace")

# COMMAND ----------

# MAGIC %load_ext jupyter_amlflow

# COMMAND ----------

# DBTITLE 1,Sign in with the secret scope and connect
# MAGIC %amlflow connect {workspace} --secret-scope aml-sp --experiment databricks-quickstart

# COMMAND ----------

# MAGIC %md
# MAGIC From here on, plain `mlflow` calls log to the workspace. A small gradient-descent fit, so the
# MAGIC notebook needs nothing but the standard library (on a cluster, train with Spark as usual and log
# MAGIC from the driver):

# COMMAND ----------

# DBTITLE 1,Train and log
import math
import random

import mlflow

random.seed(7)
xs = [i / 10 for i in range(50)]
ys = [3.0 * x + 1.0 + random.gauss(0, 0.1) for x in xs]

with mlflow.start_run(run_name="databricks-quickstart") as run:
    learning_rate, epochs = 0.02, 30
    mlflow.log_params({"learning_rate": learning_rate, "epochs": epochs})
    w = b = 0.0
    for epoch in range(epochs):
        errors = [w * x + b - y for x, y in zip(xs, ys, strict=True)]
        w -= learning_rate * 2 * sum(e * x for e, x in zip(errors, xs)) / len(xs)
        b -= learning_rate * 2 * sum(errors) / len(xs)
        mse = sum(e * e for e in errors) / len(xs)
        mlflow.log_metric("rmse", math.sqrt(mse), step=epoch)

print(f"Run {run.info.run_id}: rmse={math.sqrt(mse):.3f}")

# COMMAND ----------

# MAGIC %amlflow status

# COMMAND ----------

# MAGIC %md
# MAGIC ## Logging from Spark executors
# MAGIC
# MAGIC `%amlflow connect` sets up MLflow in this notebook's Python process, on the driver. Code that Spark
# MAGIC runs on executors (UDFs, `mapInPandas`, `foreachPartition`) runs in other processes that share none
# MAGIC of it. Prefer to collect results to the driver and log them here. If executors must log, give them
# MAGIC the run id and the tracking URI (`mlflow.get_tracking_uri()`) explicitly, and a service principal
# MAGIC in the cluster's environment (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, and `AZURE_CLIENT_SECRET` from
# MAGIC `{{secrets/aml-sp/client-secret}}`), then call `jupyter_amlflow.connect(...)` there before logging.
