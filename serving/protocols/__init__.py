"""One codec per wire protocol (MLflow's scoring protocol, the Open Inference Protocol),
each a :class:`~satchel.serving.protocols.base.Protocol` the data plane drives."""
