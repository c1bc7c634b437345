# Reading deep, optional fields with object.get and friends.
package corpus.object_get

replicas := object.get(input, ["spec", "replicas"], 1)

image := object.get(input, ["spec", "template", "image"], "none")

annotations := object.get(input.metadata, "annotations", {})

cleaned := object.remove(input.metadata, ["managedFields", "uid"])

merged := object.union({"team": "unknown", "tier": "3"}, object.get(input.metadata, "labels", {}))

keys := object.keys(object.get(input, "metadata", {}))

filtered := object.filter(object.get(input.metadata, "labels", {}), ["team", "app"])

scaled if replicas > 3
