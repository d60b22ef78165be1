package join

import "sigs.k8s.io/yaml"

func yamlUnmarshalStrict(data []byte, v any) error { return yaml.UnmarshalStrict(data, v) }
