print("leadtrail")
