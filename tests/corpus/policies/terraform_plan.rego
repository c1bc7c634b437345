# Terraform plan review: a weighted blast radius over the resource changes.
package corpus.terraform_plan

weights := {"aws_instance": 5, "aws_iam_role": 20, "aws_s3_bucket": 2.5}

changes := [c | some c in input.resource_changes]

actions(kind, action) := count([c |
	some c in changes
	c.type == kind
	action in c.change.actions
])

score := sum([weighted |
	some kind, w in weights
	n := actions(kind, "delete") + (actions(kind, "create") / 2)
	weighted := w * n
])

default authorized := false

authorized if score < input.threshold

touches_iam if {
	some c in changes
	c.type == "aws_iam_role"
}
