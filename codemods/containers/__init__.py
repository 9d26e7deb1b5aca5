"""Layers and parameters kept in plain Python containers on an nn.Module, which PyTorch never
registers: TFM101 (list of layers -> ``nn.ModuleList``), TFM102 (dict of layers ->
``nn.ModuleDict``), TFM103 (list of parameters -> ``nn.ParameterList``) and TFM104 (dict of
parameters -> ``nn.ParameterDict``).

``_containers`` holds what the four share: finding ``self.x = <container>`` in the methods of
an nn.Module, checking every use of the attribute against what the registered container
supports, and the changes that wrap the value. The parameter rules extend the module rules.
"""
