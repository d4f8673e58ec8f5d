"""Scale-out: which device runs (:mod:`.devices`), torchrun's ranks and process group (:mod:`.distributed`),
a batch split between processes (:mod:`.sharding`) and CPU threads on a shared machine (:mod:`.threads`)."""
