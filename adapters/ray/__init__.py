"""The `ray` executor: each instance of a partitioned stage runs in a Ray actor.

Sources and unpartitioned nodes stay in the engine process; a stage instance's node there
(`RemoteStage`) sends each batch to its actor and awaits the results. Ray is optional
(`headrace[ray]`): nothing here imports it until the executor is asked for.
"""
